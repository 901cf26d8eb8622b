// Directories in PostgreSQL: one row per canonical encoding, keyed by its
// BLAKE3. A closure goes in with one INSERT, so it appears all at once.
import { readDirectory, type Directory } from '../castore/messages.js';
import { encodeDirectory } from '../castore/directory.js';
import { LocalDirectoryService } from '../castore/local-directory-service.js';
import { openPgIndex, type PgIndex } from './pg-index.js';

export class PgDirectoryService extends LocalDirectoryService {
  private readonly db: PgIndex;
  constructor(url: string) {
    super();
    this.db = openPgIndex(url);
  }

  protected async load(digest: Uint8Array): Promise<Directory | undefined> {
    const r = await this.db.query<{ data: Buffer }>('SELECT data FROM directories WHERE digest = $1', [Buffer.from(digest)]);
    return r.rows.length ? readDirectory(r.rows[0].data) : undefined;
  }

  protected async save(ordered: { digest: Buffer; dir: Directory }[]): Promise<void> {
    await this.db.query(
      'INSERT INTO directories (digest, data) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING',
      [ordered.map((o) => o.digest), ordered.map((o) => encodeDirectory(o.dir))],
    );
  }

  async stats() {
    const r = await this.db.query<{ n: string; b: string }>('SELECT count(*) AS n, coalesce(sum(octet_length(data)), 0) AS b FROM directories');
    return { count: Number(r.rows[0].n), bytes: Number(r.rows[0].b) };
  }

  override async close(): Promise<void> {
    await this.db.release();
  }
}
