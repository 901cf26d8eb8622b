// BlobService Stat and Put, and BlobBatchService Has and Put, served
// straight on node:http2 streams. A copy makes one Put (and often one
// Stat) per file, tens of thousands of calls for a few hundred MB; grpc-js's
// per-call machinery (interceptors, metadata objects, event plumbing) was
// most of the daemon's CPU for them. Here a large blob's chunks, and the
// blobs of a batch, are taken from the network reads they arrive in,
// without copying them into message buffers. The handlers' bodies are the
// grpc-js ones (handlers.ts, batch-handlers.ts): only the transport
// differs. Calls this path does not speak — compression, deadlines — and
// every other method stay with grpc-js.
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { status } from '@grpc/grpc-js';
import type { Store } from '../store/from-addr.js';
import type * as C from '../castore/messages.js';
import { blobBatchServiceDef, blobServiceDef, PACKAGES } from '../grpc/definitions.js';
import type { BatchBlob } from '../castore/batch-messages.js';
import { PutBlobsParser } from '../castore/batch-stream.js';
import { invalid } from '../castore/errors.js';
import { hasBlobs, putBlobs } from './batch-handlers.js';
import { framed, MessageReader } from '../grpc/h2/framing.js';
import { GrpcError, isGrpcContentType } from '../grpc/h2/status.js';
import { toStatus, type StatusObject } from '../grpc/status.js';
import { MalformedRequest, malformedError, malformedStatus, tolerantDecoding } from './decode.js';
import { putBlob, statBlob } from './handlers.js';
import { writeRefusalFor, type AccessPolicy } from './access.js';

/** Handles one stream; false leaves it to grpc-js. */
export type LeanRoute = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;

/** Bytes, and messages, read ahead of a Put's writer before the stream is paused. */
const MAX_QUEUED_BYTES = 4 << 20;
const MAX_QUEUED_ITEMS = 1024;

export function leanBlobRoute(store: Store, maxMessageBytes: number, access: AccessPolicy): LeanRoute {
  const def = tolerantDecoding(blobServiceDef());
  const stat = statBlob(store);
  const put = putBlob(store);
  const routes = new Map<string, (call: LeanCall) => void>();
  for (const pkg of PACKAGES) {
    const p = `/${pkg}.castore.v1.BlobService/`;
    routes.set(p + 'Stat', (call) =>
      void unary(call, async (bytes) => {
        const req = def.Stat.requestDeserialize(bytes as Buffer); // only batch Puts are parsed
        const bad = malformedStatus(req);
        if (bad) return bad;
        const res = await stat(req);
        return 'code' in res ? res : def.Stat.responseSerialize(res);
      }),
    );
    routes.set(p + 'Put', (call) => {
      const refusal = writeRefusalFor(access, call.header('authorization'));
      if (refusal) return call.finish(refusal);
      const chunks = async function* (): AsyncGenerator<C.BlobChunk> {
        for (let m = await call.take(); m !== undefined; m = await call.take()) {
          if (m instanceof DataPiece) {
            yield m;
            continue;
          }
          const chunk = def.Put.requestDeserialize(m as Buffer); // only batch Puts are parsed
          if (chunk instanceof MalformedRequest) throw malformedError(chunk);
          yield chunk;
        }
      };
      put(chunks(), call.signal).then(
        (res) => call.reply(def.Put.responseSerialize(res)),
        (err) => call.finish(statusOf(err)),
      );
    });
  }
  const batch = tolerantDecoding(blobBatchServiceDef());
  const has = hasBlobs(store, maxMessageBytes);
  const putMany = putBlobs(store);
  routes.set(batch.Has.path, (call) =>
    void unary(call, async (bytes) => {
      const req = batch.Has.requestDeserialize(bytes as Buffer); // only batch Puts are parsed
      const bad = malformedStatus(req);
      if (bad) return bad;
      const res = await has(req);
      return 'code' in res ? res : batch.Has.responseSerialize(res);
    }),
  );
  routes.set(batch.Put.path, (call) => {
    const refusal = writeRefusalFor(access, call.header('authorization'));
    if (refusal) return call.finish(refusal);
    void unary(call, async (m) => {
      let blobs: BatchBlob[];
      if (m instanceof ParsedBatch) blobs = m.blobs;
      else {
        const req = batch.Put.requestDeserialize(m);
        const bad = malformedStatus(req);
        if (bad) return bad;
        blobs = req.blobs;
      }
      return batch.Put.responseSerialize(await putMany({ blobs }));
    });
  });
  const modes = new Map<string, Mode>([...routes.keys()].map((path) => [path, path === batch.Put.path ? 'batch' : path.endsWith('/Put') ? 'chunks' : 'whole']));
  return (stream, headers) => {
    const path = headers[':path'] as string;
    const route = routes.get(path);
    if (!route || !speaksLean(headers)) return false;
    route(new LeanCall(stream, headers, maxMessageBytes, modes.get(path)!));
    return true;
  };
}

/**
 * How a call's messages that span DATA chunks are taken: whole (copied
 * together), as BlobChunk data pieces, or parsed as a PutBlobsRequest.
 */
type Mode = 'whole' | 'chunks' | 'batch';

/** What this path handles: plain gRPC without compression or a deadline. */
function speaksLean(h: IncomingHttpHeaders): boolean {
  const enc = h['grpc-encoding'];
  return h[':method'] === 'POST' && isGrpcContentType(h['content-type']) && (enc === undefined || enc === 'identity') && h['grpc-timeout'] === undefined;
}

/** A unary call's one request: its message, or (batch Put) the blobs parsed from it. */
async function unary(call: LeanCall, body: (req: Buffer | ParsedBatch) => Promise<Buffer | StatusObject>): Promise<void> {
  try {
    const req = await call.next();
    if (req === undefined) return call.finish({ code: status.UNIMPLEMENTED, details: `Received no request message for ${call.path}` });
    if ((await call.next()) !== undefined) return call.finish({ code: status.UNIMPLEMENTED, details: `Received a second request message for ${call.path}` });
    const res = await body(req);
    if (Buffer.isBuffer(res)) call.reply(res);
    else call.finish(res);
  } catch (err) {
    call.finish(statusOf(err));
  }
}

/** Part of a BlobChunk's data, taken from the DATA chunks it arrived in. */
class DataPiece implements C.BlobChunk {
  constructor(readonly data: Buffer) {}
}

/** A PutBlobsRequest parsed from the DATA chunks it arrived in. */
class ParsedBatch {
  constructor(readonly blobs: BatchBlob[]) {}
}

/**
 * Where the data starts in a BlobChunk of `length` bytes whose first bytes
 * are `head`, if it is one `data` field and nothing else (what clients
 * send); undefined for any other shape, which is then decoded whole.
 */
export function blobChunkDataStart(length: number, head: Buffer): number | undefined {
  if (head.length < 2 || head[0] !== 0x0a) return undefined;
  let value = 0;
  let scale = 1;
  // Messages are below 4 GiB: the length varint has at most 5 bytes.
  for (let i = 1; i < head.length && i <= 5; i++) {
    value += (head[i] & 0x7f) * scale;
    if (head[i] < 0x80) return value === length - (i + 1) ? i + 1 : undefined;
    scale *= 128;
  }
  return undefined;
}

/** One call on one stream: its request messages in order, then one answer. */
class LeanCall extends MessageReader {
  readonly path: string;
  private readonly queue: (Buffer | DataPiece | ParsedBatch)[] = [];
  private parser: PutBlobsParser | undefined;
  private queuedBytes = 0;
  private head = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private answered = false;
  private aborter: AbortController | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    maxMessageBytes: number,
    private readonly mode: Mode,
  ) {
    super(maxMessageBytes);
    this.path = headers[':path'] as string;
    // Errors come with a 'close' too; without a listener they would be thrown.
    stream.on('error', () => {});
    stream.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      const bad = this.readData(chunk);
      if (bad) this.fail(bad);
      else if (this.queuedBytes >= MAX_QUEUED_BYTES || this.queue.length - this.head >= MAX_QUEUED_ITEMS) stream.pause();
      this.notify();
    });
    stream.on('end', () => {
      if (this.midMessage) this.fail(new Error('the request ended inside a message'));
      this.ended = true;
      this.notify();
    });
    stream.on('close', () => {
      if (this.answered) return;
      const err = new Error('call cancelled by the client');
      this.fail(err);
      this.aborter?.abort(err);
      this.notify();
    });
  }

  header(name: string): string | undefined {
    const v = this.headers[name];
    return typeof v === 'string' ? v : undefined;
  }

  /** Aborts when the client goes away before the answer (see clientStreamHandler). */
  get signal(): AbortSignal {
    this.aborter ??= new AbortController();
    if (this.stream.closed && !this.answered) this.aborter.abort(new Error('call cancelled by the client'));
    return this.aborter.signal;
  }

  protected message(payload: Buffer): void {
    this.queue.push(payload);
    this.queuedBytes += payload.length;
  }

  protected override streamFrom(length: number, head: Buffer): number | undefined {
    if (this.mode === 'chunks') return blobChunkDataStart(length, head);
    if (this.mode !== 'batch') return undefined;
    this.parser = new PutBlobsParser(length);
    return 0;
  }

  protected override piece(bytes: Buffer): void {
    if (this.mode === 'chunks') {
      this.queue.push(new DataPiece(bytes));
      this.queuedBytes += bytes.length;
      return;
    }
    const p = this.parser;
    if (!p) return; // the batch was malformed: the call has failed
    try {
      p.feed(bytes);
    } catch (err) {
      this.parser = undefined;
      return this.fail(invalid(`malformed request: ${(err as Error).message}`));
    }
    if (!p.complete) return;
    this.parser = undefined;
    this.queue.push(new ParsedBatch(p.blobs));
  }

  /** The next request message (a batch Put's parsed, if it spanned DATA chunks); undefined after the last; throws if the stream failed. */
  async next(): Promise<Buffer | ParsedBatch | undefined> {
    const m = await this.take();
    if (m instanceof DataPiece) throw new Error('internal error: BlobChunk pieces on a unary call');
    return m;
  }

  /** The next request message or piece of one, undefined after the last. */
  async take(): Promise<Buffer | DataPiece | ParsedBatch | undefined> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.head < this.queue.length) {
        const m = this.queue[this.head];
        this.queue[this.head++] = undefined as never;
        this.queuedBytes -= m instanceof DataPiece ? m.data.length : m instanceof ParsedBatch ? 0 : m.length;
        if (this.head === this.queue.length) {
          this.queue.length = this.head = 0;
          if (this.stream.isPaused()) this.stream.resume();
        }
        return m;
      }
      if (this.ended) return undefined;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  reply(payload: Buffer): void {
    if (!this.answer()) return;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    this.stream.once('wantTrailers', () => this.stream.sendTrailers({ 'grpc-status': '0' }));
    this.stream.end(framed(payload));
  }

  /** Ends the call with a status and no message (a trailers-only response). */
  finish(st: StatusObject): void {
    if (!this.answer()) return;
    this.stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(st.code), 'grpc-message': encodeDetails(st.details) },
      { endStream: true },
    );
    // Whatever the client still sends is read and dropped, so it sees the status rather than a stall.
    this.fail(new Error('the call has been answered'));
    this.stream.resume();
  }

  private answer(): boolean {
    if (this.answered) return false;
    this.answered = true;
    return !this.stream.destroyed && !this.stream.closed;
  }

  private fail(err: Error): void {
    this.failure ??= err;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/** Transport failures (GrpcError: an oversized or compressed message) keep their code. */
function statusOf(err: unknown): StatusObject {
  return err instanceof GrpcError ? { code: err.code, details: err.details } : toStatus(err);
}

/** grpc-message is percent-encoded (as grpc-js does it). */
function encodeDetails(details: string): string {
  try {
    return encodeURI(details);
  } catch {
    return encodeURI(details.replace(/[\ud800-\udfff]/g, '\ufffd'));
  }
}
