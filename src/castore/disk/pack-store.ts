// The packs of one on-disk store (see pack-format.ts): an in-memory index of
// every pack's entries, kept current with other processes' packs on a miss,
// and this process's own pack, written by group commit — all blobs that
// arrive while one batch is being fsynced go out together in the next, so
// a burst of small Puts costs a few fsyncs, not one or more per blob.
//
// With slabs (blob packs), records are written with O_DIRECT where the
// filesystem allows (direct-io.ts): each batch rewrites the pack's last
// partial block, kept in memory, and ends padded to a block; the padding is
// overwritten by the next batch and cut off when the pack is closed.
import { existsSync } from 'node:fs';
import { chmod, open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { b3Hex } from '../digest.js';
import { syncDir } from './dir-sync.js';
import { SLAB_BYTES, type AlignedSlabs } from './aligned-slabs.js';
import { alignUp, DIRECT_ALIGN, DIRECT_FLAGS, directWritesWork, writeSlab } from './direct-io.js';
import { DigestIndex } from './digest-index.js';
import { packRuns, type PackedRecord, type Run } from './pack-runs.js';
import { decodeIndexEntries, encodeIndexEntries, INDEX_ENTRY, parseRecordHeader, RECORD_HEADER, recordHeader, type IndexEntry } from './pack-format.js';

/** A pack grows to about this size, then the writer starts a new one. */
export const PACK_TARGET = 1 << 30;
/** A batch holds at most this many bytes: bounds one writev. */
const BATCH_BYTES = 64 << 20;

interface Pack {
  name: string;
  /** Index bytes read so far (whole, valid entries). */
  consumed: number;
  /** Written by a process that has exited: its index will not grow. */
  final: boolean;
  /** Written by this instance: its entries are indexed as they are written, never read back. */
  mine?: boolean;
  idx?: Promise<FileHandle>;
  data?: Promise<FileHandle>;
}

export interface PackedBlob {
  pack: string;
  offset: number;
  length: number;
}

interface Queued {
  digest: Buffer;
  data: Uint8Array;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class PackStore {
  private readonly index = new DigestIndex<Pack>();
  private readonly packs = new Map<string, Pack>();
  private dirMtime = -1n;
  private refreshing: Promise<void> | undefined;
  private refreshAgain: Promise<void> | undefined;
  // This process's writer. With `direct`, `data` is an O_DIRECT handle,
  // `tail` the bytes of the last partial block, and `plain` a handle for
  // writes that find no slab.
  private own: { pack: Pack; data: FileHandle; idx: FileHandle; end: number; idxEnd: number; direct: boolean; tail: Buffer; plain?: Promise<FileHandle> } | undefined;
  private directOk: Promise<boolean> | undefined;
  private readonly queue: Queued[] = [];
  private readonly queued = new Map<string, Queued>();
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Batches written by this instance (two fsyncs each): for tests. */
  batches = 0;
  /** Reads of pack data (a blob each, or a run of them): for tests. */
  dataReads = 0;

  /**
   * `slabs`: write records with O_DIRECT where the filesystem allows.
   * `writeOnly`: a writer that never reads back (the collector copying live
   * records) keeps no index of what it wrote, so its memory does not grow
   * with the records.
   */
  constructor(
    readonly dir: string,
    private readonly slabs?: AlignedSlabs,
    private readonly writeOnly = false,
  ) {}

  /** Where blob `hex` is packed, looking at other processes' new entries on a miss. */
  async find(hex: string): Promise<PackedBlob | undefined> {
    let loc = this.index.get(hex);
    if (!loc) {
      await this.refresh();
      loc = this.index.get(hex);
    }
    return loc && { pack: loc.pack.name, offset: loc.offset, length: loc.length };
  }

  /** Reads other processes' new index entries, as a miss of find() does (once for many misses). */
  catchUpIndex(): Promise<void> {
    return this.refresh();
  }

  /** The length of blob `hex` if it is packed and durable, from what this process knows already (no I/O). */
  lengthOf(hex: string): number | undefined {
    return this.index.lengthOf(hex);
  }

  /** Whether blob `hex` is packed and durable, from what this process knows already (no I/O). */
  knows(hex: string): boolean {
    return this.index.has(hex);
  }

  /** The bytes of a packed blob, or undefined if the record is not what the index says. */
  async read(hex: string): Promise<Buffer | undefined> {
    if (!this.index.has(hex)) await this.refresh();
    const loc = this.index.get(hex);
    if (!loc) return undefined;
    let h;
    try {
      h = await (loc.pack.data ??= open(join(this.dir, `${loc.pack.name}.pack`), 'r'));
    } catch (err) {
      loc.pack.data = undefined; // a failed open (say EMFILE) is tried again next time
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Removed under us (by hand): what it held is gone; the blob may be in a newer pack.
      this.forget(loc.pack);
      return this.index.has(hex) ? undefined : this.read(hex);
    }
    const buf = Buffer.allocUnsafe(RECORD_HEADER + loc.length);
    this.dataReads++;
    const { bytesRead } = await h.read(buf, 0, buf.length, loc.offset);
    return wholeRecord(buf.subarray(0, bytesRead), hex, loc.length);
  }

  /**
   * Many packed blobs (undefined: not packed, or not whole, as read() says),
   * those lying together in a pack read at once (pack-runs.ts): a read
   * each was a thread-pool round trip per small file of a NAR.
   */
  async readMany(hexes: string[]): Promise<(Buffer | undefined)[]> {
    if (hexes.some((hex) => !this.index.has(hex))) await this.refresh();
    const out = new Array<Buffer | undefined>(hexes.length).fill(undefined);
    const records: PackedRecord<Pack>[] = [];
    hexes.forEach((hex, i) => {
      const loc = this.index.get(hex);
      if (loc) records.push({ i, hex, pack: loc.pack, offset: loc.offset, length: loc.length });
    });
    await Promise.all(packRuns(records, RECORD_HEADER).map((run) => this.readRun(run, out)));
    return out;
  }

  private async readRun({ records, start, end }: Run<Pack>, out: (Buffer | undefined)[]): Promise<void> {
    const pack = records[0].pack;
    let got: Buffer | undefined;
    try {
      const h = await (pack.data ??= open(join(this.dir, `${pack.name}.pack`), 'r'));
      const buf = Buffer.allocUnsafe(end - start);
      this.dataReads++;
      got = buf.subarray(0, (await h.read(buf, 0, buf.length, start)).bytesRead);
    } catch {
      // Each on its own below: read() handles a pack that failed to open (tried again) or went away.
    }
    for (const r of records) {
      const at = r.offset - start;
      const bytes = got && wholeRecord(got.subarray(at, at + RECORD_HEADER + r.length), r.hex, r.length);
      out[r.i] = bytes ?? (await this.read(r.hex));
    }
  }

  /** Stores a blob whose digest the caller has computed; resolves once it is durable and indexed. */
  append(digest: Buffer, data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('pack store closed'));
    const hex = b3Hex(digest);
    if (this.index.has(hex)) return Promise.resolve();
    const q = this.queued.get(hex);
    if (q) return q.done;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    const item = { digest, data, done, resolve, reject };
    this.queue.push(item);
    this.queued.set(hex, item);
    this.flushing ??= this.flush();
    return done;
  }

  /** Every indexed blob of every pack (after catching up), for fsck. */
  async entries(): Promise<Map<string, PackedBlob>> {
    await this.refresh();
    const all = new Map<string, PackedBlob>();
    for (const [hex, loc] of this.index.entries()) all.set(hex, { pack: loc.pack.name, offset: loc.offset, length: loc.length });
    return all;
  }

  /** How many records are indexed and their bytes, after catching up (for stats; no copy of the index). */
  async totals(): Promise<{ count: number; bytes: number }> {
    await this.refresh();
    return { count: this.index.size, bytes: this.index.totalLength() };
  }

  /**
   * Forgets packs whose files a collector removed (their entries may live on
   * in newer packs, so every other index is read again) and closes them.
   */
  async revalidate(): Promise<void> {
    for (const p of [...this.packs.values()]) {
      if (p.mine && !p.final) continue; // this process's open pack
      if (existsSync(join(this.dir, `${p.name}.idx`)) && existsSync(join(this.dir, `${p.name}.pack`))) continue;
      this.forget(p);
      // Reads in flight may still use the handles: close them a little later.
      const handles = [p.idx, p.data];
      p.idx = p.data = undefined;
      setTimeout(() => {
        for (const h of handles) h?.then((x) => x.close(), () => {});
      }, 30_000).unref();
    }
    this.dirMtime = -1n;
  }

  /** Names of the packs seen so far (for fsck). */
  packNames(): string[] {
    return [...this.packs.keys()].sort();
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.closeOwn();
    for (const p of this.packs.values()) {
      for (const h of [p.idx, p.data]) if (h) await h.then((x) => x.close(), () => {});
      p.idx = p.data = undefined;
    }
  }

  // ---- reading other processes' packs ----

  /** Catches up with packs and entries written since the last look; concurrent callers share one. */
  private refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.catchUp().finally(() => (this.refreshing = undefined));
      return this.refreshing;
    }
    // One is running and may have looked before the caller's blob arrived: run one more after it.
    return (this.refreshAgain ??= this.refreshing.then(() => {
      this.refreshAgain = undefined;
      return this.refresh();
    }));
  }

  private async catchUp(): Promise<void> {
    let st;
    try {
      st = await stat(this.dir, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // Directory mtimes are coarse (a clock tick): a recent one may hide a newer pack.
    const recent = BigInt(Date.now()) * 1_000_000n - st.mtimeNs < 2_000_000_000n;
    if (st.mtimeNs !== this.dirMtime || recent) {
      this.dirMtime = st.mtimeNs;
      for (const f of await readdir(this.dir)) {
        if (!f.endsWith('.idx')) continue;
        const name = f.slice(0, -4);
        if (!this.packs.has(name)) this.packs.set(name, { name, consumed: 0, final: false });
      }
    }
    for (const p of this.packs.values()) if (!p.final && !p.mine) await this.readIndex(p);
  }

  private async readIndex(p: Pack): Promise<void> {
    const dead = !writerAlive(p.name);
    let h;
    try {
      h = await (p.idx ??= open(join(this.dir, `${p.name}.idx`), 'r'));
    } catch (err) {
      p.idx = undefined;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.forget(p);
      return;
    }
    const { size } = await h.stat();
    if (size - p.consumed >= INDEX_ENTRY) {
      const buf = Buffer.allocUnsafe(size - p.consumed);
      const { bytesRead } = await h.read(buf, 0, buf.length, p.consumed);
      const { entries, bytes } = decodeIndexEntries(buf.subarray(0, bytesRead));
      this.add(p, entries);
      p.consumed += bytes;
    }
    if (dead) {
      p.final = true;
      await h.close();
      p.idx = undefined;
    }
  }

  private forget(p: Pack): void {
    this.packs.delete(p.name);
    this.index.deletePack(p);
    this.dirMtime = -1n;
    // A collector copies live records to a new pack before it removes the
    // old one: entries skipped as duplicates must be read again.
    for (const o of this.packs.values()) {
      if (o.mine) continue;
      o.consumed = 0;
      o.final = false;
    }
  }

  private add(p: Pack, entries: IndexEntry[]): void {
    for (const e of entries) this.index.add(e.digest, p, e.offset, e.length);
  }

  // ---- writing this process's pack ----

  private async flush(): Promise<void> {
    // Let the Puts that arrive in this turn of the event loop join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    for (;;) {
      if (this.queue.length === 0) {
        // Cleared in the same synchronous step that sees the queue empty: no Put can slip between.
        this.flushing = undefined;
        return;
      }
      let bytes = 0;
      let n = 0;
      while (n < this.queue.length && (n === 0 || bytes + this.queue[n].data.length <= BATCH_BYTES)) bytes += this.queue[n++].data.length;
      const batch = this.queue.splice(0, n);
      try {
        await this.writeBatch(batch);
        for (const q of batch) q.resolve();
      } catch (err) {
        // The pack's tail is now unknown: the next batch starts a new pack.
        await this.closeOwn().catch(() => {});
        for (const q of batch) q.reject(err);
      } finally {
        for (const q of batch) this.queued.delete(b3Hex(q.digest));
      }
    }
  }

  private async writeBatch(batch: Queued[]): Promise<void> {
    const w = await this.writer();
    this.batches++;
    const parts: Uint8Array[] = [];
    const entries: IndexEntry[] = [];
    let at = w.end;
    for (const q of batch) {
      parts.push(recordHeader(q.digest, q.data.length), q.data);
      entries.push({ digest: q.digest, offset: at, length: q.data.length });
      at += RECORD_HEADER + q.data.length;
    }
    if (!(w.direct && (await this.writeDirect(w, parts)))) {
      const h = w.direct ? await (w.plain ??= open(join(this.dir, `${w.pack.name}.pack`), 'r+')) : w.data;
      await writeAll(h, parts, w.end);
      if (w.direct) w.tail = lastBytes([w.tail, ...parts], at % DIRECT_ALIGN);
    }
    await w.data.datasync();
    // Only now may entries point at the records: they are durable.
    const idx = encodeIndexEntries(entries);
    await writeAll(w.idx, [idx], w.idxEnd);
    await w.idx.datasync();
    w.end = at;
    w.idxEnd += idx.length;
    if (!this.writeOnly) this.add(w.pack, entries);
    if (w.end >= PACK_TARGET) await this.closeOwn();
  }

  /**
   * Writes the batch's records after the pack's last partial block, from
   * slabs; false, having written nothing, when no slab is free.
   */
  private async writeDirect(w: NonNullable<PackStore['own']>, parts: Uint8Array[]): Promise<boolean> {
    const slabs = this.slabs!;
    const first = slabs.take();
    if (!first) return false;
    const free = [first];
    const second = slabs.take();
    if (second) free.push(second);
    const inFlight: { slab: Uint8Array; done: Promise<void> }[] = [];
    let pos = w.end - w.tail.length;
    let slab = free.pop()!;
    let used = 0;
    const submit = async (): Promise<void> => {
      inFlight.push({ slab, done: writeSlab(w.data, slab, alignUp(used), pos) });
      pos += used;
      used = 0;
      if (free.length === 0) {
        await inFlight[0].done;
        free.push(inFlight.shift()!.slab);
      }
      slab = free.pop()!;
    };
    try {
      for (const p of [w.tail, ...parts]) {
        for (let off = 0; off < p.length; ) {
          const n = Math.min(SLAB_BYTES - used, p.length - off);
          slab.set(n === p.length ? p : p.subarray(off, off + n), used);
          used += n;
          off += n;
          if (used === SLAB_BYTES) await submit();
        }
      }
      const tailLength = used % DIRECT_ALIGN;
      const tail = Buffer.from(slab.subarray(used - tailLength, used));
      slab.fill(0, used, alignUp(used)); // the padding
      if (used > 0) await writeSlab(w.data, slab, alignUp(used), pos);
      for (const f of inFlight) await f.done;
      w.tail = tail;
      return true;
    } finally {
      await Promise.allSettled(inFlight.map((f) => f.done));
      for (const s of [slab, ...free, ...inFlight.map((f) => f.slab)]) slabs.give(s);
    }
  }

  private async writer(): Promise<NonNullable<PackStore['own']>> {
    if (this.own) return this.own;
    this.directOk ??= this.slabs ? directWritesWork(this.dir, this.slabs) : Promise.resolve(false);
    const direct = await this.directOk;
    const name = `${process.pid}-${randomBytes(6).toString('hex')}`;
    // Known as ours before its files exist: a catch-up running while they
    // are created must not adopt it as another writer's pack (and leak the
    // handle it would open on its index).
    const pack: Pack = { name, consumed: 0, final: false, mine: true };
    this.packs.set(name, pack);
    let data: FileHandle | undefined;
    try {
      data = await open(join(this.dir, `${name}.pack`), direct ? DIRECT_FLAGS : 'wx', 0o644);
      const idx = await open(join(this.dir, `${name}.idx`), 'wx', 0o644);
      this.own = { pack, data, idx, end: 0, idxEnd: 0, direct, tail: Buffer.alloc(0) };
    } catch (err) {
      await data?.close();
      this.packs.delete(name);
      throw err;
    }
    await syncDir(this.dir);
    return this.own;
  }

  private async closeOwn(): Promise<void> {
    const w = this.own;
    if (!w) return;
    this.own = undefined;
    // Readers of this process reopen it read-only; the index is complete.
    w.pack.final = true;
    w.pack.consumed = w.idxEnd;
    // Cut off the padding of the last O_DIRECT write (harmless if this fails: readers go by the index).
    if (w.direct && w.end % DIRECT_ALIGN !== 0) await w.data.truncate(w.end).catch(() => {});
    await Promise.all([w.data.close(), w.idx.close(), w.plain?.then((h) => h.close())]);
    // A read-only index marks a sealed pack: the collector may rewrite it
    // although its writer lives on (pack-gc.ts).
    await chmod(join(this.dir, `${w.pack.name}.idx`), 0o444).catch(() => {});
  }

  /** Closes this process's pack once its batches are written: new blobs go to a new one, and the collector may compact it. */
  async seal(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.closeOwn(); // detaches the pack at once: a flush starting now opens a new one
  }
}

async function writeAll(h: FileHandle, parts: Uint8Array[], position: number): Promise<void> {
  let total = 0;
  for (const p of parts) total += p.length;
  const { bytesWritten } = await h.writev(parts, position);
  if (bytesWritten === total) return;
  // Short write (rare: signals, quotas): finish from one contiguous buffer.
  const rest = Buffer.concat(parts).subarray(bytesWritten);
  let off = 0;
  while (off < rest.length) off += (await h.write(rest, off, rest.length - off, position + bytesWritten + off)).bytesWritten;
}

/** The last `n` bytes of `chunks` taken as one stream. */
function lastBytes(chunks: Uint8Array[], n: number): Buffer {
  const out = Buffer.alloc(n);
  let end = n;
  for (let i = chunks.length - 1; i >= 0 && end > 0; i--) {
    const c = chunks[i];
    const take = Math.min(end, c.length);
    out.set(c.subarray(c.length - take), end - take);
    end -= take;
  }
  return out;
}

/** Whether the process named in a pack's name may still be writing to it. */
export function writerAlive(name: string): boolean {
  const pid = Number(name.split('-')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A record's blob bytes if `rec` holds all of it under the header of blob `hex` of `length` bytes. */
function wholeRecord(rec: Buffer, hex: string, length: number): Buffer | undefined {
  const hdr = parseRecordHeader(rec);
  if (rec.length < RECORD_HEADER + length || !hdr || hdr.length !== length || b3Hex(hdr.digest) !== hex) return undefined;
  return rec.subarray(RECORD_HEADER);
}
