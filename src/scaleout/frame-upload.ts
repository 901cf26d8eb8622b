// A large blob's upload as zstd frames (blob-codec.ts): raw bytes are cut
// into FRAME_RAW frames, each compressed on libuv's pool (FRAMES_IN_FLIGHT
// at once: 2 keep both cores busy; 4 held 2 MiB more per upload at a
// copy's peak for no speed) and written in order to the
// part upload, raw when compressing saves too little. The frame table is
// built on the way. Memory: the frame filling and those compressing.
import { blake3 } from '../castore/digest.js';
import { FRAME_ENTRY, FRAME_RAW, compressed, type Codec, type Compression } from './blob-codec.js';
import { looksCompressed } from './precompressed.js';
import type { PartUpload } from './part-upload.js';

const FRAMES_IN_FLIGHT = 2;
/** Bytes one upload holds at most beside its parts: the frame filling and those compressing (raw and compressed). */
export const FRAME_UPLOAD_HOLDS = (FRAMES_IN_FLIGHT + 1) * 2 * FRAME_RAW;
/** Frame buffers kept for the next frames of any upload: fresh 1 MiB buffers, as external memory, draw full garbage collections. */
const spare: Buffer[] = [];
const SPARE_MAX = 2 * FRAMES_IN_FLIGHT;

export interface Framed {
  codec: Codec | null;
  stored: number | null;
  frames: Buffer | null;
}

export class FrameUpload {
  private current: Buffer | undefined;
  private filled = 0;
  private readonly pending: Promise<{ body: Buffer; entry: Buffer; packed: boolean; buf: Buffer }>[] = [];
  private readonly entries: Buffer[] = [];
  private storedBytes = 0;
  private anyCompressed = false;
  /** Decided by the first frame (precompressed.ts). */
  private tried: boolean | undefined;

  constructor(
    private readonly upload: PartUpload,
    private readonly compression: Compression,
  ) {}

  /** Takes a copy of `chunk`. */
  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      this.current ??= spare.pop() ?? Buffer.allocUnsafe(FRAME_RAW);
      const n = Math.min(chunk.length - off, FRAME_RAW - this.filled);
      this.current.set(chunk.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === FRAME_RAW) await this.sendFrame();
    }
  }

  /** Writes what is left; the row's codec columns (all NULL when every frame stayed raw: the object is the raw blob). */
  async finish(): Promise<Framed> {
    if (this.filled > 0) await this.sendFrame();
    while (this.pending.length) await this.drainOne();
    if (!this.anyCompressed) return { codec: null, stored: null, frames: null };
    return { codec: 'zstd-frames', stored: this.storedBytes, frames: Buffer.concat(this.entries) };
  }

  private async sendFrame(): Promise<void> {
    const buf = this.current!;
    const raw = buf.subarray(0, this.filled);
    this.current = undefined;
    this.filled = 0;
    // A blob that begins like a compressed format is not tried in any of its frames.
    this.tried ??= !looksCompressed(raw);
    const tried = this.tried;
    const p = (async () => {
      const z = tried ? await compressed(raw, this.compression) : undefined;
      const entry = Buffer.alloc(FRAME_ENTRY);
      const body = z ?? raw;
      entry.writeUInt32BE(body.length, 0);
      blake3(raw).copy(entry, 4, 0, 8);
      return { body, entry, packed: z !== undefined, buf };
    })();
    p.catch(() => {});
    this.pending.push(p);
    while (this.pending.length >= FRAMES_IN_FLIGHT) await this.drainOne();
  }

  private async drainOne(): Promise<void> {
    const { body, entry, packed, buf } = await this.pending.shift()!;
    this.entries.push(entry);
    this.storedBytes += body.length;
    if (packed) this.anyCompressed = true;
    await this.upload.write(body); // copies it
    if (spare.length < SPARE_MAX) spare.push(buf);
  }
}
