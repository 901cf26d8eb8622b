// Reading small blobs back from packs: a NAR of a path with thousands of
// small files reads them one after another, mostly in the order they were
// packed. So a read fetches a window of the pack (WINDOW bytes from the
// blob on) in one ranged GET, learns from the index which other blobs lie
// in it, and keeps both: the next reads cost neither S3 nor PostgreSQL.
// An object's bytes never change, so a window is never wrong; a location
// goes stale when a collector moves the blob to a new pack and deletes the
// old one, and the reader then looks it up afresh (s3-blob-service.ts).
// Windows hold stored bytes: a compressed entry is decompressed by the
// reader (s3-blob-service.ts), never kept decompressed here.
import type { PgIndex } from './pg-index.js';
import type { S3Objects } from './s3-objects.js';
import { LOCATION_COLUMNS, locationOf, storedLength, type Location, type LocationRow } from './blob-codec.js';
import { digestKey } from '../castore/digest.js';

const WINDOW = 4 << 20;
const WINDOW_BUDGET = 64 << 20;
const MAX_LOCATIONS = 200_000;

interface Window {
  object: string;
  start: number;
  data: Buffer;
}

export class PackCache {
  /** Least recently used first (Map order). */
  private readonly windows = new Map<string, Window>();
  private windowBytes = 0;
  private readonly fetching = new Map<string, Promise<Window>>();
  readonly locations = new Map<string, Location>();

  constructor(
    private readonly s3: S3Objects,
    private readonly db: PgIndex,
  ) {}

  /** The blob's stored bytes, from a cached window or a newly fetched one. */
  async slice(loc: Location): Promise<Buffer> {
    const w = this.covering(loc) ?? (await this.fetchWindow(loc));
    const from = loc.offset - w.start;
    const n = storedLength(loc);
    if (from < 0 || from + n > w.data.length) {
      throw new Error(`${loc.object} is shorter than the index says (${w.start + w.data.length} bytes, blob at ${loc.offset}+${n})`);
    }
    return w.data.subarray(from, from + n);
  }

  private covering(loc: Location): Window | undefined {
    for (const [key, w] of this.windows) {
      if (w.object === loc.object && w.start <= loc.offset && loc.offset + storedLength(loc) <= w.start + w.data.length) {
        this.windows.delete(key); // most recently used: to the end
        this.windows.set(key, w);
        return w;
      }
    }
    return undefined;
  }

  private fetchWindow(loc: Location): Promise<Window> {
    const key = `${loc.object}@${loc.offset}`;
    let p = this.fetching.get(key);
    if (!p) {
      p = this.load(loc).finally(() => this.fetching.delete(key));
      this.fetching.set(key, p);
    }
    return p;
  }

  private async load(loc: Location): Promise<Window> {
    const end = loc.offset + Math.max(storedLength(loc), WINDOW);
    const [data, rows] = await Promise.all([
      this.readRange(loc.object, loc.offset, end - loc.offset),
      this.db.query<LocationRow & { digest: Buffer }>(
        `SELECT b.digest, ${LOCATION_COLUMNS} FROM blobs b WHERE b.object = $1 AND b."offset" >= $2 AND b."offset" + coalesce(b.stored, b.length) <= $3`,
        [loc.object, loc.offset, end],
      ),
    ]);
    const w: Window = { object: loc.object, start: loc.offset, data };
    for (const r of rows.rows) {
      const l = locationOf(r);
      if (l.offset + storedLength(l) <= loc.offset + data.length) this.remember(digestKey(r.digest), l);
    }
    this.windows.set(`${w.object}@${w.start}`, w);
    this.windowBytes += data.length;
    for (const [k, old] of this.windows) {
      if (this.windowBytes <= WINDOW_BUDGET) break;
      this.windows.delete(k);
      this.windowBytes -= old.data.length;
    }
    return w;
  }

  /** Bytes [offset, offset+length) or up to the object's end, whichever is first. */
  private async readRange(object: string, offset: number, length: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of await this.s3.range(object, offset, length)) parts.push(Buffer.from(chunk));
    return Buffer.concat(parts);
  }

  /** Forgets every location in `object` (it is gone). */
  forgetObject(object: string): void {
    for (const [id, loc] of this.locations) if (loc.object === object) this.locations.delete(id);
  }

  remember(id: string, loc: Location): void {
    if (this.locations.size >= MAX_LOCATIONS) this.locations.delete(this.locations.keys().next().value!);
    this.locations.set(id, loc);
  }
}
