// A large blob's upload to S3: its bytes are copied once, into a part-sized
// buffer, and each full buffer is one UploadPart (a few in flight); a blob
// that fits one part is one PUT. (Buffers kept for reuse raised a copy's
// peak RSS more than they saved.)
// lib-storage's Upload, fed through a PassThrough, copied every byte twice
// more (the stream merging buffered chunks, then joining them into parts)
// into fresh 8 MiB buffers: most of a copy → S3's memcpy and page faults.
import { PART_SIZE, type S3Objects } from './s3-objects.js';

/** UploadParts in flight per blob (several blobs upload at once). */
const PARTS_IN_FLIGHT = 2;
/** Bytes one upload holds at most: the parts in flight and the one filling. */
export const PART_UPLOAD_HOLDS = (PARTS_IN_FLIGHT + 1) * PART_SIZE;

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
      this.current ??= Buffer.allocUnsafe(PART_SIZE);
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
      const body = this.current ?? Buffer.alloc(0);
      try {
        await this.s3.put(this.object, body.subarray(0, this.filled));
      } finally {
        this.release();
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
    this.current = undefined;
    this.filled = 0;
  }

  private sendPart(): void {
    const body = this.current!.subarray(0, this.filled);
    this.current = undefined;
    this.filled = 0;
    const n = this.etags.length + 1;
    this.uploadId ??= this.s3.startMultipart(this.object);
    const etag = this.uploadId.then((id) => this.s3.putPart(this.object, id, n, body));
    this.etags.push(etag);
    etag.catch((err) => (this.failed ??= err));
    const settled = etag.then(
      () => {},
      () => {},
    ).finally(() => this.inFlight.delete(settled));
    this.inFlight.add(settled);
  }
}
