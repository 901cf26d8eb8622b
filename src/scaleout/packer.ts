// Packs small blobs into shared S3 objects, so a closure of tens of
// thousands of small files costs a few hundred PUTs, not one each.
//
// A blob's Put resolves only once its pack is durably in S3 *and* indexed,
// so batching never weakens a Put's promise. A pack is sealed when it
// reaches PACK_TARGET, or once it is LINGER_MS old and an upload slot is
// free: a lone blob waits LINGER_MS; under load, every Put a client has in
// flight joins the open pack (so a client should keep hundreds in flight).
import { randomUUID } from 'node:crypto';
import type { S3Objects } from './s3-objects.js';
import type { PgIndex } from './pg-index.js';

export const PACK_TARGET = 16 << 20;
const UPLOAD_SLOTS = 2;
const LINGER_MS = 50;

interface Entry {
  digest: Buffer;
  data: Buffer;
}

interface Pack {
  opened: number;
  entries: Entry[];
  size: number;
  settle: (err?: unknown) => void;
  done: Promise<void>;
}

function newPack(): Pack {
  let settle!: (err?: unknown) => void;
  const done = new Promise<void>((res, rej) => (settle = (err) => (err ? rej(err) : res())));
  done.catch(() => {});
  return { opened: Date.now(), entries: [], size: 0, settle, done };
}

export class Packer {
  private open: Pack | undefined;
  private readonly sealed: Pack[] = [];
  private uploading = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Digests waiting in an open or uploading pack, so duplicates share it. */
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly s3: S3Objects,
    private readonly db: PgIndex,
  ) {}

  add(digest: Buffer, data: Buffer): Promise<void> {
    const id = digest.toString('hex');
    const existing = this.inFlight.get(id);
    if (existing) return existing;
    const pack = (this.open ??= newPack());
    pack.entries.push({ digest, data });
    pack.size += data.length;
    const done = pack.done.finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, done);
    if (pack.size >= PACK_TARGET) this.seal();
    else if (!this.timer) this.timer = setTimeout(() => this.lingered(), LINGER_MS);
    return done;
  }

  /** Uploads whatever is open now, and waits until every pack is settled. */
  async flush(): Promise<void> {
    this.seal();
    await Promise.allSettled([...this.inFlight.values()]);
  }

  private lingered(): void {
    this.timer = undefined;
    // With every slot busy, the next upload to finish seals it.
    if (this.uploading < UPLOAD_SLOTS) this.seal();
  }

  private seal(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.open && this.open.entries.length) this.sealed.push(this.open);
    this.open = undefined;
    this.pump();
  }

  private pump(): void {
    while (this.uploading < UPLOAD_SLOTS && this.sealed.length) {
      const pack = this.sealed.shift()!;
      this.uploading++;
      this.upload(pack).then(
        () => pack.settle(),
        (err) => pack.settle(err),
      ).finally(() => {
        this.uploading--;
        if (!this.sealed.length && this.open && !this.timer) this.seal();
        else this.pump();
      });
    }
  }

  private async upload(pack: Pack): Promise<void> {
    // Skip what another writer (or daemon) has indexed meanwhile.
    const present = await this.db.query<{ digest: Buffer }>('SELECT b.digest FROM unnest($1::bytea[]) AS k(d) JOIN blobs b ON b.digest = k.d', [
      pack.entries.map((e) => e.digest),
    ]);
    const skip = new Set(present.rows.map((r) => r.digest.toString('hex')));
    const todo = pack.entries.filter((e) => !skip.has(e.digest.toString('hex')));
    if (!todo.length) return;
    const offsets: number[] = [];
    let off = 0;
    for (const e of todo) {
      offsets.push(off);
      off += e.data.length;
    }
    const object = `packs/${randomUUID()}`;
    await this.s3.put(object, Buffer.concat(todo.map((e) => e.data), off));
    await this.db.query(
      `INSERT INTO blobs (digest, object, "offset", length)
       SELECT d, $1, o, l FROM unnest($2::bytea[], $3::bigint[], $4::bigint[]) AS t(d, o, l)
       ON CONFLICT DO NOTHING`,
      [object, todo.map((e) => e.digest), offsets, todo.map((e) => e.data.length)],
    );
  }
}
