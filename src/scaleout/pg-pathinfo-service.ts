// PathInfos in PostgreSQL, keyed by the store path's digest. Validation and
// the "everything it needs is already indexed" check happen in the base.
import { PathInfoCodec, type PathInfo } from '../store/messages.js';
import { LocalPathInfoService } from '../store/backends/local-pathinfo-service.js';
import type { Castore } from '../store/render-nar.js';
import { openPgIndex, type PgIndex } from './pg-index.js';

const PAGE = 500;

export class PgPathInfoService extends LocalPathInfoService {
  private readonly db: PgIndex;
  constructor(url: string, castore: Castore) {
    super(castore);
    this.db = openPgIndex(url);
  }

  protected async load(storeDigest: Uint8Array): Promise<PathInfo | undefined> {
    const r = await this.db.query<{ data: Buffer }>('SELECT data FROM pathinfos WHERE digest = $1', [Buffer.from(storeDigest)]);
    return r.rows.length ? PathInfoCodec.decode(r.rows[0].data) : undefined;
  }

  protected async save(storeDigest: Uint8Array, info: PathInfo): Promise<void> {
    await this.db.query(
      'INSERT INTO pathinfos (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET data = EXCLUDED.data',
      [Buffer.from(storeDigest), PathInfoCodec.encode(info)],
    );
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
    await this.db.release();
  }
}
