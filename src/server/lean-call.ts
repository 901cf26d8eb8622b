// One gRPC call served on a node:http2 stream (lean-blob.ts routes them):
// its request messages in order, with backpressure, then one answer or a
// status. Messages that span DATA chunks are copied together, or, by the
// call's Mode, taken from the chunks they arrive in: a large blob's
// BlobChunks as pieces of data, a batch Put parsed blob by blob as it is
// copied into a reused arena (receive-arenas.ts).
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type * as C from '../castore/messages.js';
import type { BatchBlob } from '../castore/batch-messages.js';
import { PutBlobsParser } from '../castore/batch-stream.js';
import { invalid } from '../castore/errors.js';
import { blobChunkDataStart, framed, MessageReader } from '../grpc/h2/framing.js';
import { GrpcError } from '../grpc/h2/status.js';
import { toStatus, type StatusObject } from '../grpc/status.js';
import { receiveArenas } from './receive-arenas.js';
import type { Holding } from '../util/byte-budget.js';
import { overBudget } from './request-budget.js';

/** Bytes, and messages, read ahead of a Put's writer before the stream is paused. */
const MAX_QUEUED_BYTES = 4 << 20;
const MAX_QUEUED_ITEMS = 1024;

const counts = { wakes: 0 };
/** How many times a call's reader was woken for new messages (for tests). */
export function leanCallWakes(): number {
  return counts.wakes;
}

/**
 * How a call's messages that span DATA chunks are taken: whole (copied
 * together), as BlobChunk data pieces, or parsed as a PutBlobsRequest.
 */
export type Mode = 'whole' | 'chunks' | 'batch';

/** Part of a BlobChunk's data, taken from the DATA chunks it arrived in. */
export class DataPiece implements C.BlobChunk {
  constructor(readonly data: Buffer) {}
}

/** A PutBlobsRequest parsed from the DATA chunks it arrived in. */
export class ParsedBatch {
  constructor(
    readonly blobs: BatchBlob[],
    /** Request bytes it was parsed from (what it holds of the budget until taken). */
    readonly bytes = 0,
  ) {}
}

/** One call on one stream: its request messages in order, then one answer. */
export class LeanCall extends MessageReader {
  readonly path: string;
  private readonly queue: (Buffer | DataPiece | ParsedBatch)[] = [];
  private parser: PutBlobsParser | undefined;
  /** Bytes fed to `parser` so far. */
  private parsedBytes = 0;
  private queuedBytes = 0;
  private head = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private wakeSoon: NodeJS.Immediate | undefined;
  private answered = false;
  private aborter: AbortController | undefined;
  /** Arenas a batch Put's request was copied into (recycle()). */
  private arenas: Buffer[] = [];
  private arenaAt = 0;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly headers: IncomingHttpHeaders,
    maxMessageBytes: number,
    private readonly mode: Mode,
    /** What this call holds of the daemon's budget for buffered request bytes. */
    private readonly holding: Holding,
  ) {
    super(maxMessageBytes);
    this.path = headers[':path'] as string;
    // Errors come with a 'close' too; without a listener they would be thrown.
    stream.on('error', () => {});
    stream.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      const bad = this.readData(chunk);
      if (bad) this.fail(bad);
      else if (!this.holding.set(this.heldBytes)) this.fail(overBudget(this.holding));
      else if (this.queuedBytes >= MAX_QUEUED_BYTES || this.queue.length - this.head >= MAX_QUEUED_ITEMS) stream.pause();
      if (this.mode === 'chunks' && !this.failure) this.notifySoon();
      else this.notify();
    });
    stream.on('end', () => {
      if (this.midMessage) this.fail(new Error('the request ended inside a message'));
      this.ended = true;
      this.notify();
    });
    stream.on('close', () => {
      this.drop();
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
  /**
   * Whether the client came through a unix socket (so it is on this
   * machine): the listening server's address is a path then. Anything
   * else, or a Node that no longer says, counts as remote.
   */
  get overUnixSocket(): boolean {
    const socket = this.stream.session?.socket as { server?: { address(): unknown } } | undefined;
    return typeof socket?.server?.address() === 'string';
  }

  get signal(): AbortSignal {
    this.aborter ??= new AbortController();
    if (this.stream.closed && !this.answered) this.aborter.abort(new Error('call cancelled by the client'));
    return this.aborter.signal;
  }

  protected message(payload: Buffer): void {
    if (this.mode === 'batch' && payload.length > 0) {
      // Not a view of the network read: that would outlive young collections.
      const arena = this.arena(payload.length);
      payload.copy(arena);
      payload = arena.subarray(0, payload.length);
    }
    this.queue.push(payload);
    this.queuedBytes += payload.length;
  }

  protected override streamFrom(length: number, head: Buffer): number | undefined {
    if (this.mode === 'chunks') return blobChunkDataStart(length, head);
    if (this.mode !== 'batch') return undefined;
    const arena = this.arena(length);
    this.arenaAt = 0;
    this.parser = new PutBlobsParser(length, arena.subarray(0, length));
    return 0;
  }

  private arena(length: number): Buffer {
    const a = receiveArenas.take(length);
    this.arenas.push(a);
    return a;
  }

  /**
   * The request's memory may be reused: call only once nothing refers to
   * its bytes (a batch Put that succeeded). Without this call the arenas
   * are left to the garbage collector.
   */
  recycle(): void {
    for (const a of this.arenas) receiveArenas.give(a);
    this.arenas = [];
  }

  protected override piece(bytes: Buffer): void {
    if (this.mode === 'chunks') {
      this.queue.push(new DataPiece(bytes));
      this.queuedBytes += bytes.length;
      return;
    }
    const p = this.parser;
    if (!p) return; // the batch was malformed: the call has failed
    const arena = this.arenas[this.arenas.length - 1];
    bytes.copy(arena, this.arenaAt);
    const copied = arena.subarray(this.arenaAt, this.arenaAt + bytes.length);
    this.arenaAt += bytes.length;
    try {
      p.feed(copied);
    } catch (err) {
      this.parser = undefined;
      return this.fail(invalid(`malformed request: ${(err as Error).message}`));
    }
    this.parsedBytes += bytes.length;
    if (!p.complete) return;
    this.parser = undefined;
    this.queue.push(new ParsedBatch(p.blobs, this.parsedBytes));
    this.queuedBytes += this.parsedBytes;
    this.parsedBytes = 0;
  }

  /** The next request message (a batch Put's parsed, if it spanned DATA chunks); undefined after the last; throws if the stream failed. */
  async next(): Promise<Buffer | ParsedBatch | undefined> {
    const m = await this.take();
    if (m instanceof DataPiece) throw new Error('internal error: BlobChunk pieces on a unary call');
    return m;
  }

  /** The next request message or piece of one, undefined after the last. One promise per call, however long it waits. */
  take(): Promise<Buffer | DataPiece | ParsedBatch | undefined> {
    return new Promise((resolve, reject) => {
      const attempt = (): void => {
        try {
          const m = this.takeQueued();
          if (m !== undefined || this.ended) resolve(m);
          else this.wake = attempt;
        } catch (err) {
          reject(err);
        }
      };
      attempt();
    });
  }

  /** The next message or piece if one has arrived (undefined if none has, or after the last); throws if the stream failed. */
  takeQueued(): Buffer | DataPiece | ParsedBatch | undefined {
    if (this.failure) throw this.failure;
    if (this.head >= this.queue.length) return undefined;
    const m = this.queue[this.head];
    this.queue[this.head++] = undefined as never;
    this.queuedBytes -= m instanceof DataPiece ? m.data.length : m instanceof ParsedBatch ? m.bytes : m.length;
    this.holding.set(this.heldBytes); // shrinks: always granted
    if (this.head === this.queue.length) this.queue.length = this.head = 0;
    // Resumed at half the limit rather than once empty: the client's
    // window reopens while there is still work queued, so its bytes are
    // on the way when the queue runs out (not a round trip later).
    if (this.queuedBytes <= MAX_QUEUED_BYTES / 2 && this.queue.length - this.head <= MAX_QUEUED_ITEMS / 2 && this.stream.isPaused()) this.stream.resume();
    return m;
  }

  reply(payload: Buffer): void {
    if (!this.answer()) return;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    this.stream.once('wantTrailers', () => this.stream.sendTrailers({ 'grpc-status': '0' }));
    this.stream.end(framed(payload));
  }

  /** Starts a streamed answer: headers now, messages by send(), trailers by end(). False if the client is gone. */
  startStream(): boolean {
    if (!this.answer()) return false;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    return true;
  }

  /**
   * Queues `head` and `body` (one message's bytes) without copying them;
   * `written` is called once they have gone to the socket, never if the
   * stream fails first (the caller then must not reuse `body`'s memory).
   * Resolves at once, or once the stream takes more; rejects when the
   * client has gone away.
   */
  send(head: Buffer, body: Uint8Array, written?: () => void): Promise<void> | undefined {
    const s = this.stream;
    if (this.gone) throw new Error('call cancelled by the client');
    s.write(head);
    const more = s.write(body, written && ((err?: Error | null) => void (err ? undefined : written())));
    if (more) return undefined;
    return new Promise((resolve, reject) => {
      const drained = (): void => {
        s.off('close', gone);
        resolve();
      };
      const gone = (): void => {
        s.off('drain', drained);
        reject(new Error('call cancelled by the client'));
      };
      s.once('drain', drained);
      s.once('close', gone);
    });
  }

  /** Whether the stream has closed (the client went away, or the answer is complete). */
  get gone(): boolean {
    return this.stream.closed || this.stream.destroyed;
  }

  /** Resolves once the client has gone away or the stream has ended. */
  get closed(): Promise<void> {
    if (this.gone) return Promise.resolve();
    return new Promise((resolve) => this.stream.once('close', () => resolve()));
  }

  /** Ends a streamed answer with `st` in its trailers. */
  end(st: StatusObject): void {
    const s = this.stream;
    if (this.gone) return;
    const trailers = st.code === 0 ? { 'grpc-status': '0' } : { 'grpc-status': String(st.code), 'grpc-message': encodeDetails(st.details) };
    s.once('wantTrailers', () => s.sendTrailers(trailers));
    s.end();
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

  /** Request bytes this call holds in memory: a message being reassembled, a batch being parsed, messages queued. */
  private get heldBytes(): number {
    return this.pendingBytes + this.parsedBytes + this.queuedBytes;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.drop();
  }

  /** Frees what a failed or closed call holds: nothing of it will be read. */
  private drop(): void {
    this.dropPending();
    this.parser = undefined;
    this.parsedBytes = 0;
    this.queue.length = this.head = 0;
    this.queuedBytes = 0;
    this.holding.release();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    if (w) counts.wakes++;
    w?.();
  }

  /**
   * Wakes the reader once the event loop has delivered what it read. Node
   * hands a Put's bytes over one DATA frame (16 KiB: its client never
   * sends larger ones) per callback; waking the writer for each cost a
   * round of promises per 16 KiB, most of the daemon's JavaScript time.
   */
  private notifySoon(): void {
    if (this.wake === undefined || this.wakeSoon !== undefined) return;
    this.wakeSoon = setImmediate(() => {
      this.wakeSoon = undefined;
      this.notify();
    });
  }
}

/** Transport failures (GrpcError: an oversized or compressed message) keep their code. */
export function statusOf(err: unknown): StatusObject {
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
