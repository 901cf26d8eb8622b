// Directories in PostgreSQL: one row per canonical encoding, keyed by its
// BLAKE3. A closure goes in with one INSERT, so it appears all at once.
// Gets made in the same turn of the event loop are one query (NAR
// rendering asks for the subdirectories of a directory all at once).
import { readDirectory, type Directory } from '../castore/messages.js';
import type { EncodedDirectory } from '../castore/closure-validator.js';
import { LocalDirectoryService } from '../castore/local-directory-service.js';
import { openPgIndex, type PgIndex } from './pg-index.js';
import { Batcher } from './batcher.js';
import { digestLookup, digestsParam } from './pg-digests.js';
import { digestKey } from '../castore/digest.js';

/** Encodings of the directories of digests ($1), by position. */
export const ENCODINGS_SQL = `SELECT k.i, t.data FROM ${digestLookup(1, 'directories', 't', 't.data')}`;

export class PgDirectoryService extends LocalDirectoryService {
  private readonly db: PgIndex;
  private readonly encodings: Batcher<Buffer>;
  /** Queries that loaded directories so far, for tests and benchmarks. */
  loadQueries = 0;
  /** A closure walk (a PathInfo Put's content check) loads 256 ahead, which the batcher joins: a query per 256, not per directory. */
  protected override readonly walkAhead = 256;
  constructor(url: string) {
    super();
    this.db = openPgIndex(url);
    this.encodings = new Batcher(async (keys) => {
      this.loadQueries++;
      const r = await this.db.query<{ i: number; data: Buffer }>(ENCODINGS_SQL, [digestsParam(keys)]);
      return new Map(r.rows.map((row) => [digestKey(keys[row.i]), row.data]));
    }, 256);
  }

  protected async load(digest: Uint8Array): Promise<Directory | undefined> {
    const data = await this.encodings.get(digest);
    return data ? readDirectory(data) : undefined;
  }

  protected async save(ordered: EncodedDirectory[]): Promise<void> {
    await this.db.query(
      'INSERT INTO directories (digest, data) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT DO NOTHING',
      [ordered.map((o) => o.digest), ordered.map((o) => o.encoded)],
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
