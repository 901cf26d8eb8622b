// Digests sent to PostgreSQL as one binary parameter (pg-digests.ts):
// against the real server, every key of a batch larger than a thousand is
// answered at its own position, duplicates and absent keys included, and
// the blob index's lookups (locations and sizes) find what a store holds,
// and every lookup by digests (and every delete or update by digests: the
// collector's, the recorded reads') probes the primary key instead of
// scanning the table, whatever the planner knows of the table; the
// collector's deletes and recorded reads race without deadlock or loss.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { digestLookup, digestsParam } from '../../src/scaleout/pg-digests.js';
import { openPgIndex } from '../../src/scaleout/pg-index.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import { LOCATIONS_SQL, S3BlobService, SIZES_SQL } from '../../src/scaleout/s3-blob-service.js';
import { PRESENT_SQL } from '../../src/scaleout/packer.js';
import { ENCODINGS_SQL } from '../../src/scaleout/pg-directory-service.js';
import { BYTES_BY_OBJECT_SQL, DELETE_PATHINFOS_SQL, DELETE_ROWS_SQL, LIVE_BYTES_SQL, LOCK_ROWS_SQL, MOVE_PACKED_SQL, PgGc } from '../../src/scaleout/pg-gc.js';
import { DIRECTORY_ROWS_SQL } from '../../src/fsck/scaleout-directory-checks.js';
import { BLOB_ROWS_SQL } from '../../src/fsck/scaleout-object-checks.js';
import { INDEXED_OBJECTS_SQL } from '../../src/fsck/scaleout-orphans.js';
import { LOCK_READS_SQL, RECORD_READS_SQL, pgReadSink } from '../../src/scaleout/pg-reads.js';
import { PATHINFOS_BY_DIGEST_SQL } from '../../src/scaleout/pg-pathinfo-service.js';
import { COLLECTED_REFERENCE_SQL } from '../../src/scaleout/pg-gc-fence.js';
import { PINNED_PRESENT_SQL } from '../../src/gc/scaleout-gc.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { Rng } from '../helpers/seeded-random.js';

describe('digests as one binary parameter', () => {
  let where: ScaleoutAddr;
  before(async () => {
    where = await freshScaleoutAddr('pg-digests');
  });
  after(() => where.drop());

  it('digestsParam puts the digests end to end and refuses one of another length', () => {
    const a = Buffer.alloc(32, 1);
    const b = Buffer.alloc(32, 2);
    assert.deepEqual(digestsParam([a, b]), Buffer.concat([a, b]));
    assert.equal(digestsParam([]).length, 0);
    assert.throws(() => digestsParam([a, Buffer.alloc(31)]), /31 bytes, not 32/);
  });

  it('each row names the position of the key it answers, for 2,500 keys with duplicates and absent ones', async () => {
    const db = openPgIndex(parseS3Addr(where.addr).indexUrl);
    try {
      const rng = new Rng(7);
      const present = Array.from({ length: 1200 }, () => rng.bytes(32));
      const keys: Buffer[] = [];
      for (let i = 0; i < 2500; i++) keys.push(i % 3 === 0 ? rng.bytes(32) : present[i % present.length]);
      const c = await db.transaction(async (tx) => {
        await tx.query('CREATE TEMP TABLE t (digest bytea PRIMARY KEY, n int) ON COMMIT DROP');
        await tx.query('INSERT INTO t SELECT d, ord::int FROM unnest($1::bytea[]) WITH ORDINALITY AS u(d, ord)', [present]);
        const r = await tx.query<{ i: number; n: number }>(`SELECT k.i, t.n FROM ${digestLookup(1, 't', 't', 't.n')}`, [digestsParam(keys)]);
        return r.rows;
      });
      const expected = keys.flatMap((k, i) => {
        const at = present.findIndex((p) => p.equals(k));
        return at < 0 ? [] : [{ i, n: at + 1 }];
      });
      assert.ok(expected.length > 1000);
      assert.deepEqual([...c].sort((x, y) => x.i - y.i), expected);
    } finally {
      await db.release();
    }
  });

  it("the blob index's lookups find every stored blob by position, and nothing for absent ones", async () => {
    const store = openStore(sameAddr(where.addr));
    try {
      const rng = new Rng(11);
      const blobs = Array.from({ length: 40 }, (_, i) => rng.bytes(100 + i * 1000));
      const digests = [];
      for (const b of blobs) digests.push(await putBytes(store.blobs, b));
      const absent = blake3(Buffer.from('not stored'));
      const s3 = store.blobs as S3BlobService;
      const sizes = await s3.sizesOf([absent, ...digests.slice().reverse(), absent]);
      assert.deepEqual(sizes, [undefined, ...blobs.map((b) => b.length).reverse(), undefined]);
      // Locations, through stat (the batcher joins them into one query).
      const stats = await Promise.all([...digests, absent].map((d) => store.blobs.stat(d)));
      assert.equal(stats.filter(Boolean).length, blobs.length);
      assert.equal(stats.at(-1), undefined);
    } finally {
      await store.close();
    }
  });

  it('lookups by digest probe the primary key, never scan the table, before and after ANALYZE', async () => {
    // A plain join of the digests with the table was planned as a hash join
    // over a scan of all of it: 36 ms per lookup of a 48,000-blob store.
    const db = openPgIndex(parseS3Addr(where.addr).indexUrl);
    try {
      const rows = 30_000;
      await db.query(`INSERT INTO blobs (digest, object, "offset", length) SELECT sha256(int4send(g)), 'packs/' || (g / 50), g, 10 FROM generate_series(1, ${rows}) AS g`);
      await db.query(`INSERT INTO directories (digest, data) SELECT sha256(int4send(g)), '\\x00'::bytea FROM generate_series(1, ${rows}) AS g`);
      await db.query(`INSERT INTO pathinfos (digest, data) SELECT substring(sha256(int4send(g)) FROM 1 FOR 20), '\\x00'::bytea FROM generate_series(1, ${rows}) AS g`);
      await db.query(`INSERT INTO gc_deleted (digest, epoch) SELECT substring(sha256(int4send(g)) FROM 1 FOR 20), 1 FROM generate_series(${rows} + 1, 2 * ${rows}) AS g`);
      const rng = new Rng(3);
      const keys = Array.from({ length: 600 }, () => rng.bytes(32));
      const objects = Array.from({ length: 600 }, (_, i) => `packs/${i}`);
      const sorted = [...keys].sort(Buffer.compare);
      // The copy's and renderer's lookups take digests end to end; fsck's and gc's, arrays.
      const paths = sorted.map((k) => k.subarray(0, 20));
      const lookups: [string, string, unknown[]][] = [
        ...Object.entries({ LOCATIONS_SQL, SIZES_SQL, PRESENT_SQL, ENCODINGS_SQL }).map(([n, sql]): [string, string, unknown[]] => [n, sql, [digestsParam(keys)]]),
        ...Object.entries({ BYTES_BY_OBJECT_SQL, DIRECTORY_ROWS_SQL, BLOB_ROWS_SQL }).map(([n, sql]): [string, string, unknown[]] => [n, sql, [keys]]),
        ['INDEXED_OBJECTS_SQL', INDEXED_OBJECTS_SQL, [objects]],
        // The collector's deletes and the recorded reads, in batches of sorted digests: a lock, then the change.
        ...Object.entries(LOCK_ROWS_SQL).map(([n, sql]): [string, string, unknown[]] => [`LOCK_ROWS_SQL.${n}`, sql, [n === 'pathinfos' ? paths : sorted]]),
        ['LOCK_READS_SQL', LOCK_READS_SQL, [paths]],
        ['DELETE_ROWS_SQL.blobs', DELETE_ROWS_SQL.blobs, [sorted]],
        ['DELETE_ROWS_SQL.directories', DELETE_ROWS_SQL.directories, [sorted]],
        ['DELETE_PATHINFOS_SQL', DELETE_PATHINFOS_SQL, [paths]],
        ['RECORD_READS_SQL', RECORD_READS_SQL, [paths, paths.map(() => Date.now())]],
        ['LIVE_BYTES_SQL', LIVE_BYTES_SQL, [objects]],
        ['PATHINFOS_BY_DIGEST_SQL', PATHINFOS_BY_DIGEST_SQL, [paths]],
        ['PINNED_PRESENT_SQL', PINNED_PRESENT_SQL, [paths]],
        // A PathInfo Put's fence check, for a path of 600 references.
        ['COLLECTED_REFERENCE_SQL', COLLECTED_REFERENCE_SQL, [paths]],
        ['MOVE_PACKED_SQL', MOVE_PACKED_SQL, ['packs/new', sorted, objects, objects.map((_, i) => i)]],
      ];
      const scans = async (): Promise<string[]> => {
        const found: string[] = [];
        for (const [name, sql, params] of lookups) {
          const r = await db.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) ${sql}`, params);
          const nodes = flatten(r.rows[0]['QUERY PLAN'][0].Plan);
          // A delete's or update's rows are found by their tuple ids (Tid Scan), which an index probe gave;
          // a Bitmap Heap Scan reads only the rows its Bitmap Index Scan found.
          for (const n of nodes) if (n['Relation Name'] && !/Index|^ModifyTable$|^Tid Scan$|^Bitmap Heap Scan$/.test(n['Node Type'])) found.push(`${name}: ${n['Node Type']} on ${n['Relation Name']}`);
          if (!nodes.some((n) => /Index/.test(n['Node Type']))) found.push(`${name}: no index`);
        }
        return found;
      };
      assert.deepEqual(await scans(), [], 'before ANALYZE');
      await db.query('ANALYZE blobs');
      await db.query('ANALYZE directories');
      await db.query('ANALYZE pathinfos');
      await db.query('ANALYZE gc_deleted');
      assert.deepEqual(await scans(), [], 'after ANALYZE');
      // And they answer as the join did: the stored ones, by position.
      const stored = await db.query<{ d: Buffer }>('SELECT sha256(int4send(g)) AS d FROM generate_series(1, 3) AS g');
      const mixed = [keys[0], stored.rows[2].d, keys[1], stored.rows[0].d];
      const got = await db.query<{ i: number }>(PRESENT_SQL, [digestsParam(mixed)]);
      assert.deepEqual(got.rows.map((r) => r.i).sort(), [1, 3]);
      const bytes = await db.query<{ object: string; bytes: string }>(BYTES_BY_OBJECT_SQL, [mixed]);
      assert.deepEqual(bytes.rows.map((r) => [r.object, Number(r.bytes)]), [['packs/0', 20]]);
      const indexed = await db.query<{ object: string }>(INDEXED_OBJECTS_SQL, [['packs/1', 'packs/none', 'packs/2']]);
      assert.deepEqual(indexed.rows.map((r) => r.object).sort(), ['packs/1', 'packs/2']);
      const live = await db.query<{ object: string; live: string }>(LIVE_BYTES_SQL, [['packs/1', 'packs/none', 'packs/2']]);
      assert.deepEqual(live.rows.map((r) => [r.object, Number(r.live)]).sort(), [['packs/1', 500], ['packs/2', 500]]);
      // The fence names a reference a collection deleted and no PathInfo holds again; pins see the paths held.
      const held = (g: number) => stored.rows[g].d.subarray(0, 20);
      const deleted = (await db.query<{ d: Buffer }>(`SELECT substring(sha256(int4send(${rows} + 5)) FROM 1 FOR 20) AS d`)).rows[0].d;
      const fence = async (refs: Buffer[]) => (await db.query<{ digest: Buffer }>(COLLECTED_REFERENCE_SQL, [refs])).rows.map((r) => r.digest);
      assert.deepEqual(await fence([held(0), keys[0].subarray(0, 20), deleted]), [deleted]);
      assert.deepEqual(await fence([held(0), keys[0].subarray(0, 20)]), []);
      await db.query(`INSERT INTO gc_deleted (digest, epoch) VALUES ($1, 1)`, [held(1)]); // deleted once, then put again
      assert.deepEqual(await fence([held(1)]), []);
      const pinned = await db.query<{ digest: Buffer }>(PINNED_PRESENT_SQL, [[held(2), deleted, held(0)]]);
      assert.deepEqual(pinned.rows.map((r) => r.digest), [held(2), held(0)]);
      // The deletes take exactly the stored rows of their keys (absent and repeated keys included), and record deleted PathInfos.
      const doomed = [...mixed, stored.rows[0].d].sort(Buffer.compare);
      await db.transaction(async (tx) => {
        const count = async () => Number((await tx.query<{ n: string }>('SELECT count(*) AS n FROM blobs')).rows[0].n);
        const before = await count();
        assert.equal((await tx.query(DELETE_ROWS_SQL.blobs, [doomed])).rowCount, 2);
        assert.equal((await tx.query(DELETE_ROWS_SQL.directories, [doomed])).rowCount, 2);
        assert.equal((await tx.query(DELETE_PATHINFOS_SQL, [doomed.map((k) => k.subarray(0, 20))])).rowCount, 2);
        const left = await tx.query<{ n: string }>('SELECT count(*) AS n FROM blobs WHERE digest = ANY($1::bytea[])', [stored.rows.map((r) => r.d)]);
        assert.equal(Number(left.rows[0].n), 1);
        const recorded = await tx.query<{ digest: Buffer }>('SELECT digest FROM gc_deleted WHERE deleted_at = now() ORDER BY digest'); // in this transaction
        assert.deepEqual(recorded.rows.map((r) => r.digest), [stored.rows[0].d, stored.rows[2].d].map((d) => d.subarray(0, 20)).sort(Buffer.compare));
        assert.equal(await count(), before - 2);
        // A rewrite moves the rows named with their old object, and only those.
        const moved = await tx.query(MOVE_PACKED_SQL, ['packs/new', [stored.rows[1].d, keys[0]], ['packs/0', 'packs/0'], [7, 8]]);
        assert.equal(moved.rowCount, 1);
        const at = await tx.query<{ object: string; offset: string }>('SELECT object, "offset" FROM blobs WHERE digest = $1', [stored.rows[1].d]);
        assert.deepEqual([at.rows[0].object, Number(at.rows[0].offset)], ['packs/new', 7]);
        assert.equal((await tx.query(MOVE_PACKED_SQL, ['packs/newer', [stored.rows[1].d], ['packs/0'], [9]])).rowCount, 0);
        const infos = await tx.query<{ digest: Buffer }>(PATHINFOS_BY_DIGEST_SQL, [[stored.rows[1].d.subarray(0, 20), stored.rows[0].d.subarray(0, 20), keys[0].subarray(0, 20)]]);
        assert.deepEqual(infos.rows.map((r) => r.digest), [stored.rows[1].d.subarray(0, 20)]); // the others deleted or never there
        // Reads set read_at, never back in time, for the paths still there.
        const p = (g: number) => stored.rows[g].d.subarray(0, 20);
        const readAt = async (g: number) => (await tx.query<{ t: Date | null }>('SELECT read_at AS t FROM pathinfos WHERE digest = $1', [p(g)])).rows[0].t?.getTime();
        const sortedPaths = [p(1), doomed[0].subarray(0, 20)].sort(Buffer.compare);
        assert.equal((await tx.query(RECORD_READS_SQL, [sortedPaths, [5_000_000, 5_000_000]])).rowCount, 1);
        assert.equal(await readAt(1), 5_000_000);
        assert.equal((await tx.query(RECORD_READS_SQL, [[p(1)], [4_000_000]])).rowCount, 0);
        assert.equal(await readAt(1), 5_000_000);
        assert.equal((await tx.query(RECORD_READS_SQL, [[p(1)], [6_000_000]])).rowCount, 1);
        assert.equal(await readAt(1), 6_000_000);
      });
    } finally {
      await db.release();
    }
  });

  it('recorded reads and the collector lock PathInfos in the same order: racing them never deadlocks, and every doomed row goes', async () => {
    // Locks taken in different orders by two statements deadlock, and
    // PostgreSQL then aborts one (40P01): a read lost, or a collection
    // failed. And a row updated by a read while the collector deleted it
    // must still be deleted (a delete by tuple id in the locking statement
    // missed the rows a read had updated after its snapshot).
    const url = parseS3Addr(where.addr).indexUrl;
    const db = openPgIndex(url);
    const gc = await PgGc.open(url);
    try {
      const n = 3000;
      const rows = await db.query<{ d: Buffer }>(`SELECT substring(sha256(int4send(g)) FROM 1 FOR 20) AS d FROM generate_series(1, ${n}) AS g`);
      const all = rows.rows.map((r) => r.d).sort(Buffer.compare);
      const odd = all.filter((_, i) => i % 2 === 1);
      const reads = (ds: Buffer[], t: number) => new Map(ds.map((d) => [d.toString('hex'), t]));
      const sink = pgReadSink(db);
      for (let round = 0; round < 12; round++) {
        await db.query(`INSERT INTO pathinfos (digest, data) SELECT d, '\\x00'::bytea FROM unnest($1::bytea[]) AS k(d) ON CONFLICT DO NOTHING`, [all]);
        const [deleted] = await Promise.all([gc.deletePathInfos(all), sink(reads(all, 1_000_000 + round)), sink(reads(odd, 2_000_000 + round))]);
        assert.equal(deleted, n, `round ${round}`);
        const left = await db.query<{ n: string }>('SELECT count(*) AS n FROM pathinfos WHERE digest = ANY($1::bytea[])', [all]);
        assert.equal(Number(left.rows[0].n), 0, `round ${round}`);
      }
    } finally {
      await gc.close();
      await db.release();
    }
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function flatten(n: PlanNode): PlanNode[] {
  return [n, ...(n.Plans ?? []).flatMap(flatten)];
}
