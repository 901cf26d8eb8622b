// A large blob's upload to S3: its bytes are copied once, into a part-sized
// buffer, and each full buffer is one UploadPart; a blob that fits one part
// is one PUT. Buffers and the parts sending at once are shared by all
// uploads of the process and bounded there (part-buffers.ts).
// lib-storage's Upload, fed through a PassThrough, copied every byte twice
// more (the stream merging buffered chunks, then joining them into parts)
// into fresh 8 MiB buffers: most of a copy → S3's memcpy and page faults.
import { PART_SIZE, type S3Objects } from './s3-objects.js';
import { PARTS_SENDING, givePart, sendingSlot, takePart } from './part-buffers.js';

/**
 * Bytes one upload holds at most: the part filling and, at worst, every
 * part sending (a server counts them against its budget, heldPerWriter).
 */
export const PART_UPLOAD_HOLDS = (PARTS_SENDING + 1) * PART_SIZE;

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
      // The next buffer is taken only once this one is sending (the process-wide bound).
      if (this.filled === PART_SIZE) await this.sendPart();
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
    if (this.filled > 0) await this.sendPart();
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

  /** Resolves once the filled part has a sending slot (its request then runs on its own). */
  private async sendPart(): Promise<void> {
    const buf = this.current!;
    const body = buf.subarray(0, this.filled);
    this.current = undefined;
    this.filled = 0;
    const release = await sendingSlot();
    if (this.failed !== undefined) {
      // Aborted or failed while waiting: nothing more is sent.
      givePart(buf, true);
      release();
      throw this.failed;
    }
    const n = this.etags.length + 1;
    this.uploadId ??= this.s3.startMultipart(this.object);
    const etag = this.uploadId.then((id) => this.s3.putPart(this.object, id, n, body));
    this.etags.push(etag);
    etag.catch((err) => (this.failed ??= err));
    // The buffer goes back before the slot: buffers in use never outnumber uploads filling + PARTS_SENDING.
    const settled = etag
      .then(
        () => givePart(buf, true),
        () => givePart(buf, false),
      )
      .finally(() => {
        release();
        this.inFlight.delete(settled);
      });
    this.inFlight.add(settled);
  }
}
