// A large blob's upload to S3: its bytes are copied once, into a part-sized
// buffer, and each full buffer is one UploadPart (a few in flight); a blob
// that fits one part is one PUT. A part's buffer, once stored, is reused
// by the next part of any upload while parts keep coming (fresh 8 MiB
// buffers, as external memory, drew full garbage collections), and
// dropped when no upload is filling or sending one.
// lib-storage's Upload, fed through a PassThrough, copied every byte twice
// more (the stream merging buffered chunks, then joining them into parts)
// into fresh 8 MiB buffers: most of a copy → S3's memcpy and page faults.
import { PART_SIZE, type S3Objects } from './s3-objects.js';

/** UploadParts in flight per blob (several blobs upload at once). */
const PARTS_IN_FLIGHT = 2;
/** Bytes one upload holds at most: the parts in flight and the one filling. */
export const PART_UPLOAD_HOLDS = (PARTS_IN_FLIGHT + 1) * PART_SIZE;

/** Stored parts' buffers kept for the next parts, at most. */
const SPARE_PARTS = 4;
const spareParts: Buffer[] = [];
/** Part buffers handed out and not yet given back or dropped. */
let partsOut = 0;

function takePart(): Buffer {
  partsOut++;
  return spareParts.pop() ?? Buffer.allocUnsafe(PART_SIZE);
}

/** `reuse`: the buffer's bytes were stored (a failed request's body may still be in the SDK's hands). */
function givePart(buf: Buffer, reuse: boolean): void {
  partsOut--;
  if (reuse && spareParts.length < SPARE_PARTS) spareParts.push(buf);
  if (partsOut === 0) spareParts.length = 0;
}

export class PartUpload {
  private current: Buffer | undefined;
  private filled = 0;
  private uploadId: Promise<string> | undefined;
  private readonly etags: Promise<string>[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private failed: unknown;

  constructor(
    private readonly s3: S3Objects,
    readonly object: string,
  ) {}

  /** Takes a copy of `chunk`; resolves when more may be written (parts in flight bound the memory). */
  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.failed !== undefined) throw this.failed;
      this.current ??= takePart();
      const n = Math.min(chunk.length - off, PART_SIZE - this.filled);
      this.current.set(chunk.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === PART_SIZE) {
        this.sendPart();
        while (this.inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(this.inFlight);
      }
    }
    if (this.failed !== undefined) throw this.failed;
  }

  /** Resolves once the whole object is durably in S3. */
  async finish(): Promise<void> {
    if (this.uploadId === undefined) {
      // One part or less: a single PUT.
      const buf = this.current;
      const n = this.filled;
      this.current = undefined;
      this.filled = 0;
      let stored = false;
      try {
        await this.s3.put(this.object, buf ? buf.subarray(0, n) : Buffer.alloc(0));
        stored = true;
      } finally {
        if (buf) givePart(buf, stored);
      }
      return;
    }
    if (this.filled > 0) this.sendPart();
    await Promise.allSettled([...this.inFlight]);
    if (this.failed !== undefined) throw this.failed;
    await this.s3.completeMultipart(this.object, await this.uploadId, await Promise.all(this.etags));
  }

  /** Stops: nothing more is sent, a multipart upload is abandoned (a finished single PUT is the caller's to delete). */
  async abort(): Promise<void> {
    this.failed ??= new Error('upload aborted');
    await Promise.allSettled([...this.inFlight]);
    this.release();
    if (this.uploadId !== undefined) {
      const id = await this.uploadId.catch(() => undefined);
      if (id !== undefined) await this.s3.abortMultipart(this.object, id).catch(() => {});
    }
  }

  private release(): void {
    if (this.current) givePart(this.current, true); // never sent: nobody else holds it
    this.current = undefined;
    this.filled = 0;
  }

  private sendPart(): void {
    const buf = this.current!;
    const body = buf.subarray(0, this.filled);
    this.current = undefined;
    this.filled = 0;
    const n = this.etags.length + 1;
    this.uploadId ??= this.s3.startMultipart(this.object);
    const etag = this.uploadId.then((id) => this.s3.putPart(this.object, id, n, body));
    this.etags.push(etag);
    etag.catch((err) => (this.failed ??= err));
    const settled = etag.then(
      () => givePart(buf, true),
      () => givePart(buf, false),
    ).finally(() => this.inFlight.delete(settled));
    this.inFlight.add(settled);
  }
}
