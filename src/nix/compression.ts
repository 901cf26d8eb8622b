// The compressions of Nix binary caches, as streaming transforms over
// async iterables of bytes (memory flat whatever the size):
//
// * zstd out: @mongodb-js/zstd compresses 1 MiB at a time on libuv's thread
//   pool into independent frames; Nix (libarchive) reads concatenated frames.
// * zstd in: libzstd's streaming decoder in WebAssembly (zstd-stream.ts;
//   Nix's upload is one frame of the whole NAR, and the native binding only
//   takes whole buffers).
// * xz both ways: lzma-native (liblzma, prebuilt in the package).
// * bzip2 in only (Nix's old default): unbzip2-stream.
import { Readable, type Duplex } from 'node:stream';
import { zstdCompress } from './zstd-native.js';
import { ZstdStream } from './zstd-stream.js';
import { xzDictionaryBytes, xzHeadNeeded } from './xz-header.js';
import * as lzma from 'lzma-native';
import bz2 from 'unbzip2-stream';
import { CompressionError, FRAMES_IN_FLIGHT, LEVELS, ZSTD_FRAME, checkLevel, type Compression, type ServedCompression } from './compression-names.js';

export * from './compression-names.js';

/** Memory liblzma may use to decode one upload (xz -9 needs 65 MiB). */
const XZ_MEMLIMIT = 256 << 20;

/**
 * Compresses `src` as it is pulled; cancelling the result stops the work.
 * `consumed`, for zstd: called with each chunk of `src` once its bytes are
 * copied (the caller may reuse its memory then).
 */
export function compress(src: AsyncIterable<Uint8Array>, kind: ServedCompression, level = LEVELS[kind].default, consumed?: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  checkLevel(kind, level);
  if (kind === 'none') return passThrough(src);
  if (kind === 'zstd') return zstdFrames(src, level, consumed);
  return throughStream(src, lzma.createStream('easyEncoder', { preset: level, check: lzma.CHECK_CRC64 }), 'xz');
}

/**
 * Decompresses `src` as it is pulled; malformed input throws CompressionError.
 * `hold` is told of the memory the decoder takes (its window or dictionary)
 * before it is used, and throws to refuse it.
 */
export function decompress(src: AsyncIterable<Uint8Array>, kind: Compression, hold?: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  switch (kind) {
    case 'none':
      return passThrough(src);
    case 'zstd':
      return zstdDecode(src, hold);
    case 'xz':
      return xzDecode(src, hold);
    case 'bzip2':
      hold?.(BZIP2_MEMORY);
      return throughStream(src, bz2(), 'bzip2');
  }
}

/** What bzip2 decoding holds: a block of up to 900 kB, and 4 bytes per byte of it. */
const BZIP2_MEMORY = 4 << 20;

/**
 * The first block's header says how large a dictionary decoding needs;
 * that is held, and liblzma told to refuse any later block that asks for
 * more (a stream concatenated behind, say).
 */
async function* xzDecode(src: AsyncIterable<Uint8Array>, hold?: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  const it = src[Symbol.asyncIterator]();
  let head: Uint8Array = new Uint8Array(0);
  let done = false;
  while (!done && head.length < xzHeadNeeded(head)) {
    const r = await it.next();
    if (r.done) done = true;
    else head = head.length === 0 ? r.value : Buffer.concat([head, r.value]);
  }
  const dict = xzDictionaryBytes(head) ?? 0; // not an .xz header: liblzma says so
  if (dict > XZ_MEMLIMIT) throw new CompressionError(`the xz data asks for a dictionary of ${dict} bytes: at most ${XZ_MEMLIMIT} are accepted (xz -9 uses 64 MiB)`);
  const memory = dict + XZ_OVERHEAD;
  hold?.(memory);
  const rest = async function* () {
    try {
      if (head.length > 0) yield head;
      for (let r = done ? undefined : await it.next(); r && !r.done; r = await it.next()) yield r.value;
    } finally {
      if (!done) await it.return?.();
    }
  };
  yield* throughStream(rest(), lzma.createStream('streamDecoder', { memlimit: memory, flags: lzma.CONCATENATED }), 'xz');
}

/** liblzma's own structures beside the dictionary. */
const XZ_OVERHEAD = 1 << 20;

async function* passThrough(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* src;
}

/**
 * Independent frames of up to ZSTD_FRAME bytes, FRAMES_IN_FLIGHT
 * compressing at once on libuv's pool while the next is gathered: one at a
 * time left the second core idle, and compressing bounds a .nar.zst. The
 * inputs are a few reused buffers (a fresh MiB per frame was a page fault
 * per 4 KiB).
 */
async function* zstdFrames(src: AsyncIterable<Uint8Array>, level: number, consumed?: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  const spare: Buffer[] = [];
  let buf: Buffer = Buffer.allocUnsafe(ZSTD_FRAME);
  let pos = 0;
  let frames = 0;
  const pending: { input: Buffer; out: Promise<Buffer> }[] = [];
  const start = (input: Buffer): void => {
    const out = zstdCompress(input, level);
    out.catch(() => {}); // awaited below
    pending.push({ input, out });
    frames++;
  };
  for await (const chunk of src) {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(chunk.length - off, ZSTD_FRAME - pos);
      buf.set(chunk.subarray(off, off + n), pos);
      pos += n;
      off += n;
      if (pos === ZSTD_FRAME) {
        start(buf);
        if (pending.length >= FRAMES_IN_FLIGHT) {
          const first = pending.shift()!;
          const out = await first.out;
          spare.push(first.input); // compressed: its memory takes a later frame
          yield out;
        }
        buf = spare.pop() ?? Buffer.allocUnsafe(ZSTD_FRAME);
        pos = 0;
      }
    }
    consumed?.(chunk);
  }
  // An empty input still gives one (empty) frame: a valid zstd file.
  if (pos > 0 || frames === 0) start(buf.subarray(0, pos));
  while (pending.length > 0) yield await pending.shift()!.out;
}

async function* zstdDecode(src: AsyncIterable<Uint8Array>, hold?: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  const d = await ZstdStream.create();
  // The instance's memory is counted as it grows (a frame's window is up to 128 MiB).
  let held = d.memoryBytes;
  hold?.(held);
  const malformed = (err: unknown) => new CompressionError(`malformed zstd data: ${(err as Error).message}`);
  for await (const chunk of src) {
    const pieces = d.decode(chunk);
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = pieces.next();
      } catch (err) {
        throw malformed(err);
      }
      if (d.memoryBytes > held) {
        hold?.(d.memoryBytes - held);
        held = d.memoryBytes;
      }
      if (next.done) break;
      yield next.value;
    }
  }
  try {
    d.end();
  } catch (err) {
    throw malformed(err);
  }
}

/** Feeds `src` through a Node transform stream; the transform is destroyed when the result ends or is cancelled. */
async function* throughStream(src: AsyncIterable<Uint8Array>, t: Duplex, what: string): AsyncGenerator<Uint8Array> {
  let srcError: { err: unknown } | undefined;
  const marked = async function* () {
    try {
      yield* src;
    } catch (err) {
      srcError = { err };
      throw err;
    }
  };
  const input = Readable.from(marked(), { objectMode: false });
  input.on('error', (err) => t.destroy(err));
  input.pipe(t);
  // unbzip2-stream is an old-style stream (it closes right after 'end',
  // which Readable.wrap takes for a premature close): iterate it by hand.
  const out: AsyncIterable<unknown> = Symbol.asyncIterator in t ? t : oldStyle(t);
  try {
    for await (const chunk of out) yield chunk as Uint8Array;
  } catch (err) {
    // The source's own errors pass as they are; the codec's mean malformed input.
    if (srcError) throw srcError.err;
    throw new CompressionError(`malformed ${what} data: ${(err as Error).message}`);
  } finally {
    input.destroy();
    t.destroy();
  }
}

/** The 'data'/'end'/'error' events of an old-style stream as an async iterable, paused while unread. */
async function* oldStyle(t: Duplex): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let ended = false;
  let failed: { err: unknown } | undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    wake?.();
    wake = undefined;
  };
  t.on('data', (c: Uint8Array) => {
    queue.push(c);
    if (queue.length > 16) t.pause();
    poke();
  });
  t.on('end', () => {
    ended = true;
    poke();
  });
  t.on('error', (err) => {
    failed = { err };
    poke();
  });
  for (;;) {
    if (queue.length > 0) {
      yield queue.shift()!;
      if (queue.length === 0) t.resume();
      continue;
    }
    if (failed) throw failed.err;
    if (ended) return;
    await new Promise<void>((r) => (wake = r));
  }
}
