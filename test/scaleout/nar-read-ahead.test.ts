// NAR rendering from the S3 + PostgreSQL store (real Ceph RGW, real
// PostgreSQL) reads ahead: the NAR equals `nix-store --dump`, small files
// come several per GET, a large file in several GETs at once, the bytes
// held stay within the budget when the client stops reading, a client that
// goes away aborts the GETs in flight, a file's location is looked up in
// the index once, and a directory entry whose size lies costs no read at all.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest } from '../../src/castore/directory.js';
import type { Directory, Node } from '../../src/castore/messages.js';
import type { S3BlobService } from '../../src/scaleout/s3-blob-service.js';
import { lookupStorePath } from '../../src/store/nix-view.js';
import { renderNar, ReadAheadStats } from '../../src/store/render-nar.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { CLI } from '../helpers/daemon.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { copyFixture, BIG_FILE_SIZE, type CopyFixture } from '../helpers/copy-fixtures.js';
import { nixEnv, nixStoreDump, runNix } from '../helpers/nix.js';
import { b } from '../helpers/castore-fixtures.js';
import { ByteBudget } from '../../src/util/byte-budget.js';

const BUDGET = 64 << 20; // S3BlobService's read-ahead budget
const RANGE = 8 << 20;

function cli(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** Waits (without a deadline of its own: the test runner's applies) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

/** A tree of many small files in nested directories, a few larger ones, symlinks, executables, empties. */
async function makeTree(root: string): Promise<number> {
  let files = 0;
  for (let d = 0; d < 24; d++) {
    const dir = join(root, `dir-${d}`, d % 3 === 0 ? 'deeper/still' : 'sub');
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < 40; f++) {
      const size = (d * 40 + f) % 7 === 0 ? 0 : ((d * 7919 + f * 104729) % 48) << 10 | (f * 13);
      const p = join(dir, `f${f}`);
      await writeFile(p, randomBytes(size));
      if (f % 9 === 0) await chmod(p, 0o755);
      files++;
    }
    await symlink(`../dir-${(d + 1) % 24}`, join(root, `dir-${d}`, 'next'));
  }
  for (let i = 0; i < 3; i++) {
    await writeFile(join(root, `large-${i}.bin`), randomBytes((1 << 20) + 4096 + i * 3_000_000)); // own objects; one over a range
    files++;
  }
  await mkdir(join(root, 'empty-dir'));
  return files;
}

describe('NAR rendering from S3 + PostgreSQL reads ahead', () => {
  let s: ScaleoutAddr;
  let store: Store;
  let svc: S3BlobService;
  let fx: CopyFixture;
  let work: string;
  let tree: string;
  let treeFiles = 0;

  const nodeOf = async (path: string): Promise<Node> => {
    const info = await lookupStorePath(store.pathInfos, parseAbsolute(path));
    assert.ok(info?.node, `${path} is in the store`);
    return info.node;
  };

  before(async () => {
    s = await freshScaleoutAddr('nar-read-ahead');
    fx = await copyFixture();
    work = await mkdtemp(join(tmpdir(), 'nar-read-ahead-'));
    treeFiles = await makeTree(join(work, 'many-files'));
    tree = (await runNix('nix-store', ['--add', join(work, 'many-files')])).stdout.toString().trim();
    const r = await cli(['copy', '--store', s.addr, ...fx.closure, tree]);
    assert.equal(r.code, 0, r.stderr);
    store = openStore(sameAddr(s.addr));
    svc = store.blobs as S3BlobService;
  });

  after(async () => {
    await store?.close();
    await s?.drop();
    if (tree) await runNix('nix-store', ['--delete', tree]).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('every path renders exactly what nix-store --dump writes; small files several per GET, a large file in GETs at once', async () => {
    for (const path of [...fx.closure, tree]) {
      const stats = new ReadAheadStats();
      const requests = svc.s3Requests;
      const lookups = svc.indexLookups;
      const kept = svc.locationsKept;
      const nar = await collect(renderNar(await nodeOf(path), store, { stats }));
      assert.ok(nar.equals(await nixStoreDump(path)), `${path}: the NAR differs from nix-store --dump`);
      assert.ok(stats.peakHeld <= BUDGET, `${path}: held ${stats.peakHeld} bytes`);
      assert.equal(stats.held, 0, 'everything read was written');
      if (path === tree) {
        const used = svc.s3Requests - requests;
        assert.ok(used * 10 <= treeFiles, `${treeFiles} files took ${used} S3 requests`);
        // Each file's location is looked up once: the read takes what its size lookup found.
        const looked = svc.indexLookups - lookups;
        assert.ok(looked <= treeFiles, `${treeFiles} files took ${looked} blob index lookups`);
        // ... and not kept afterwards (a daemon would hold them for hours).
        assert.ok(svc.locationsKept - kept < 10, `${svc.locationsKept - kept} locations kept`);
      }
      if (path === fx.paths.big) {
        assert.ok(stats.peakInFlight > 1, `the 100 MiB file was read ${stats.peakInFlight} GET at a time`);
        assert.ok(stats.started >= BIG_FILE_SIZE / RANGE, `${stats.started} reads`);
      }
    }
    // The CLI renders the same way.
    const r = await cli(['nar', '--store', s.addr, tree]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(await nixStoreDump(tree)));
  });

  it('holds no more than its budget while the client does not read', async () => {
    const stats = new ReadAheadStats();
    const received = svc.s3Reads.bytesReceived;
    const nar = renderNar(await nodeOf(fx.paths.big), store, { stats });
    const parts: Uint8Array[] = [];
    const first = await nar.next();
    assert.ok(!first.done);
    parts.push(first.value);
    await until(() => stats.inFlight === 0); // read ahead as far as the budget lets it
    assert.ok(stats.held <= BUDGET, `holding ${stats.held} bytes`);
    assert.ok(svc.s3Reads.bytesReceived - received <= BUDGET + RANGE, `${svc.s3Reads.bytesReceived - received} bytes fetched`);
    assert.ok(stats.held > RANGE, `read ahead ${stats.held} bytes`);
    for await (const c of nar) parts.push(c);
    assert.ok(Buffer.concat(parts).equals(await nixStoreDump(fx.paths.big)));
  });

  it("within the daemon's byte budget: holds what the budget grants, gives it all back, and progresses when the budget is spent", async () => {
    const budget = new ByteBudget(16 << 20);
    const free = 2 << 20;
    const stats = new ReadAheadStats();
    const nar = renderNar(await nodeOf(fx.paths.big), store, { stats, budget: { holding: budget.holding(), free } });
    const parts: Uint8Array[] = [];
    const first = await nar.next();
    assert.ok(!first.done);
    parts.push(first.value);
    await until(() => stats.inFlight === 0);
    assert.ok(budget.inUse <= 16 << 20, `the budget holds ${budget.inUse} bytes`);
    assert.ok(stats.held <= (16 << 20) + free, `holding ${stats.held} bytes, beyond the 16 MiB budget and ${free} free`);
    assert.ok(stats.held > RANGE, `still reads ahead: ${stats.held} bytes`);
    for await (const c of nar) parts.push(c);
    assert.ok(Buffer.concat(parts).equals(await nixStoreDump(fx.paths.big)));
    assert.equal(budget.inUse, 0, 'all given back');

    // Another holder has the whole budget: one read at a time, to the end.
    const other = budget.holding();
    assert.ok(other.set(16 << 20));
    const slow = new ReadAheadStats();
    const whole = await collect(renderNar(await nodeOf(fx.paths.big), store, { stats: slow, budget: { holding: budget.holding(), free } }));
    assert.ok(whole.equals(await nixStoreDump(fx.paths.big)));
    assert.ok(slow.peakHeld <= RANGE, `held ${slow.peakHeld} bytes with the budget spent`);
    assert.equal(budget.inUse, 16 << 20, 'only the other holder');
    other.release();
  });

  it('a client going away aborts the GETs in flight and starts no more', async () => {
    const stats = new ReadAheadStats();
    const gone = new AbortController();
    const received = svc.s3Reads.bytesReceived;
    const nar = renderNar(await nodeOf(fx.paths.big), store, { stats, signal: gone.signal });
    const pending = nar.next();
    pending.catch(() => {});
    await until(() => svc.s3Reads.getsInFlight > 0);
    gone.abort(new Error('client went away'));
    await assert.rejects(pending, /client went away/);
    await nar.return(undefined);
    assert.equal(stats.inFlight, 0, 'no read left running');
    assert.equal(svc.s3Reads.getsInFlight, 0, 'no GET left open');
    const startedBytes = Math.min(stats.started * RANGE, BIG_FILE_SIZE);
    const got = svc.s3Reads.bytesReceived - received;
    assert.ok(got < startedBytes, `the GETs were read to their end (${got} of ${startedBytes} bytes)`);
    // The store still serves afterwards.
    assert.ok((await collect(renderNar(await nodeOf(fx.paths.file), store))).equals(await nixStoreDump(fx.paths.file)));
  });

  it('a directory entry whose size lies fails the NAR at that file without reading its blob', async () => {
    const honest = b('honest bytes');
    const big = randomBytes(16 << 20);
    const tiny = b('tiny');
    const [dh, dbig, dtiny] = await Promise.all([putBytes(store.blobs, honest), putBytes(store.blobs, big), putBytes(store.blobs, tiny)]);
    const cases: [string, number, number, RegExp][] = [
      ['states less than the blob holds', 1, 0, new RegExp(`is ${big.length} bytes, its directory entry states 1\\b`)],
      ['states more than the blob holds', 64 << 20, 1, new RegExp(`is ${tiny.length} bytes, its directory entry states ${64 << 20}\\b`)],
    ];
    for (const [label, stated, which, message] of cases) {
      const liar = which === 0 ? dbig : dtiny;
      const dir: Directory = {
        directories: [],
        symlinks: [],
        files: [
          { name: b('a-honest'), digest: dh, size: honest.length, executable: false },
          ...Array.from({ length: 16 }, (_, i) => ({ name: b(`b-liar-${String(i).padStart(2, '0')}`), digest: liar, size: stated, executable: false })),
        ],
      };
      await putClosure(store.directories, [dir]);
      const stats = new ReadAheadStats();
      const received = svc.s3Reads.bytesReceived;
      await assert.rejects(
        collect(renderNar({ type: 'directory', name: b('root'), digest: directoryDigest(dir), size: 17 }, store, { stats })),
        (e: Error) => message.test(e.message),
        label,
      );
      const got = svc.s3Reads.bytesReceived - received;
      assert.ok(got < 1 << 20, `${label}: ${got} bytes fetched`);
      assert.ok(stats.peakHeld < 1 << 20, `${label}: held ${stats.peakHeld} bytes`);
    }
  });
});
