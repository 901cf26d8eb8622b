// PathInfos in PostgreSQL, keyed by the store path's digest. Validation and
// the "everything it needs is already indexed" check happen in the base.
import { PathInfoCodec, type PathInfo } from '../store/messages.js';
import { LocalPathInfoService } from '../store/backends/local-pathinfo-service.js';
import type { Castore } from '../store/render-nar.js';
import { openPgIndex, type PgIndex } from './pg-index.js';
import { fenceEpoch, fencedSave } from './pg-gc-fence.js';
import { pgReadSink } from './pg-reads.js';
import { digestArrayLookup } from './pg-digests.js';
import { ReadRecorder } from '../store/read-recorder.js';

const PAGE = 500;
const STATS_PAGE = 5000;
/** The PathInfos of the digests in $1 (stats: those whose NAR size is not known yet), each by a probe of the primary key. */
export const PATHINFOS_BY_DIGEST_SQL = `SELECT k.d AS digest, p.data FROM ${digestArrayLookup(1, 'pathinfos', 'p', 'p.data')}`;

export class PgPathInfoService extends LocalPathInfoService {
  private readonly db: PgIndex;
  constructor(url: string, castore: Castore) {
    super(castore);
    this.db = openPgIndex(url);
    this.reads = new ReadRecorder(pgReadSink(this.db));
  }

  protected async load(storeDigest: Uint8Array): Promise<PathInfo | undefined> {
    const r = await this.db.query<{ data: Buffer }>('SELECT data FROM pathinfos WHERE digest = $1', [Buffer.from(storeDigest)]);
    return r.rows.length ? PathInfoCodec.decode(r.rows[0].data) : undefined;
  }

  /** The collector's epoch when this Put's content check began (see pg-gc-fence.ts). */
  private readonly epochs = new WeakMap<PathInfo, string>();

  override async put(info: PathInfo, signal?: AbortSignal): Promise<PathInfo> {
    this.epochs.set(info, await fenceEpoch(this.db));
    return super.put(info, signal);
  }

  protected async save(storeDigest: Uint8Array, info: PathInfo): Promise<void> {
    const digest = Buffer.from(storeDigest);
    await this.db.transaction(async (c) => {
      await fencedSave(c, digest, info, this.epochs.get(info));
      await c.query(
        'INSERT INTO pathinfos (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET data = EXCLUDED.data, pushed_at = now()',
        [digest, PathInfoCodec.encode(info)],
      );
    });
  }

  /** NAR sizes of PathInfos already seen, by digest (hex): a refresh reads only the rows that are new. */
  private narSizes = new Map<string, number>();

  async stats() {
    const now = new Map<string, number>();
    let after: Buffer = Buffer.alloc(0);
    for (;;) {
      const r = await this.db.query<{ digest: Buffer }>('SELECT digest FROM pathinfos WHERE digest > $1 ORDER BY digest LIMIT $2', [after, STATS_PAGE]);
      const unknown: Buffer[] = [];
      for (const { digest } of r.rows) {
        const size = this.narSizes.get(digest.toString('hex'));
        if (size === undefined) unknown.push(digest);
        else now.set(digest.toString('hex'), size);
      }
      if (unknown.length) {
        const d = await this.db.query<{ digest: Buffer; data: Buffer }>(PATHINFOS_BY_DIGEST_SQL, [unknown]);
        for (const row of d.rows) now.set(row.digest.toString('hex'), PathInfoCodec.decode(row.data).narinfo?.narSize ?? 0);
      }
      if (r.rows.length < STATS_PAGE) break;
      after = r.rows[r.rows.length - 1].digest;
    }
    this.narSizes = now;
    let narBytes = 0;
    for (const n of now.values()) narBytes += n;
    return { count: now.size, narBytes };
  }

  // Keyset pages: memory stays flat however many paths there are.
  async *list(): AsyncIterable<PathInfo> {
    let after: Buffer = Buffer.alloc(0);
    for (;;) {
      const r = await this.db.query<{ digest: Buffer; data: Buffer }>(
        'SELECT digest, data FROM pathinfos WHERE digest > $1 ORDER BY digest LIMIT $2',
        [after, PAGE],
      );
      for (const row of r.rows) yield PathInfoCodec.decode(row.data);
      if (r.rows.length < PAGE) return;
      after = r.rows[r.rows.length - 1].digest;
    }
  }

  override async close(): Promise<void> {
    await super.close(); // the reads recorded so far
    await this.db.release();
  }
}
