// The call shapes the blob, directory and PathInfo clients need:
// failures become CastoreErrors (fromServiceError), and NOT_FOUND means
// "absent" where the caller asks for that.
import { status } from '../status-codes.js';
import type { CastoreError } from '../../castore/errors.js';
import { fromServiceError } from '../status.js';
import { Call } from './call.js';
import type { H2Connection, H2Method } from './connection.js';
import { blobChunkDataStart } from './framing.js';

const RESOLVED = Promise.resolve();

/** A call answered by exactly one message: unary and client-streaming. */
class SingleResponseCall<Req, Res> extends Call<Req, Res> {
  private response: Res | undefined;
  private received = false;
  private resolve: ((res: Res | undefined) => void) | undefined;
  private reject: ((err: CastoreError) => void) | undefined;

  constructor(
    conn: H2Connection,
    method: H2Method<Req, Res>,
    private readonly what: string,
    private readonly notFoundIsAbsent: boolean,
  ) {
    super(conn, method);
  }

  /** The response once the call has settled (`undefined`: absent). */
  result(): Promise<Res | undefined> {
    if (this.code >= 0) return this.code === status.OK || this.isAbsent() ? Promise.resolve(this.response) : Promise.reject(this.failure());
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  protected failure(): CastoreError {
    return fromServiceError(this.error(), this.what);
  }

  protected onMessage(msg: Res): void {
    if (this.received) return this.fail(status.UNIMPLEMENTED, 'the server sent more than one response message');
    this.received = true;
    this.response = msg;
  }

  protected onStatus(): void {
    if (this.code === status.OK && !this.received) {
      this.code = status.UNIMPLEMENTED;
      this.details = 'the server sent no response message';
    }
    if (this.resolve === undefined) return;
    if (this.code === status.OK) this.resolve(this.response);
    else if (this.isAbsent()) this.resolve(undefined);
    else this.reject!(this.failure());
  }

  private isAbsent(): boolean {
    return this.code === status.NOT_FOUND && this.notFoundIsAbsent;
  }
}

class UnaryCall<Req, Res> extends SingleResponseCall<Req, Res> {
  run(req: Req): Promise<Res | undefined> {
    this.open(req);
    return this.result();
  }
}

/** Unary call where NOT_FOUND means "absent". Other failures become CastoreErrors. */
export function unaryOptional<Req, Res>(conn: H2Connection, m: H2Method<Req, Res>, req: Req, what: string): Promise<Res | undefined> {
  return new UnaryCall(conn, m, what, true).run(req);
}

/**
 * Unary call: every failure, NOT_FOUND too, becomes a CastoreError.
 * Aborting `signal` cancels it on the server too (its handler sees the
 * stream reset), and the call rejects with the signal's reason.
 */
export async function unary<Req, Res>(conn: H2Connection, m: H2Method<Req, Res>, req: Req, what: string, signal?: AbortSignal): Promise<Res> {
  signal?.throwIfAborted();
  const call = new UnaryCall(conn, m, what, false);
  if (!signal) return (await call.run(req)) as Res;
  const onAbort = (): void => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return (await call.run(req)) as Res;
  } catch (err) {
    throw signal.aborted ? signal.reason : err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

export interface ClientStream<Req, Res> {
  /**
   * Resolves once the message is handed to the stream, while less than
   * SEND_AHEAD bytes wait in it to be sent; else once enough of them are.
   * `released` is called once the stream holds none of the message's
   * memory any more (bytes sent as they are, see H2Method.split).
   */
  write(msg: Req, released?: () => void): Promise<void>;
  /** Half-closes and resolves to the response. */
  finish(): Promise<Res>;
  /** Resets the stream (RST_STREAM CANCEL): the server sees the call cancelled, not completed. */
  cancel(): void;
}

/**
 * Bytes a client stream may hold unsent before write() waits: the next
 * message is queued while the one before it is being sent, so the socket
 * never runs dry between them. Waiting for `drain` instead (Node's 16 KiB
 * high-water mark: after every large message) let it empty once per
 * message, and the server then read a short piece and waited.
 */
export const SEND_AHEAD = 2 << 20;

class ClientStreamCall<Req, Res> extends SingleResponseCall<Req, Res> implements ClientStream<Req, Res> {
  private room: (() => void) | undefined;
  private roomFailed: ((err: CastoreError) => void) | undefined;
  /** Bytes handed to the stream whose write has not completed. */
  private unsent = 0;

  start(): this {
    this.open();
    return this;
  }

  write(msg: Req, released?: () => void): Promise<void> {
    if (this.code >= 0) {
      released?.(); // never sent
      return this.code === status.OK ? RESOLVED : Promise.reject(this.failure());
    }
    let bytes = 0;
    bytes = this.send(msg, false, released, () => {
      this.unsent -= bytes;
      if (this.room !== undefined && this.unsent < SEND_AHEAD) this.wake();
    });
    this.unsent += bytes;
    if (this.code >= 0 || this.unsent < SEND_AHEAD) return this.code < 0 || this.code === status.OK ? RESOLVED : Promise.reject(this.failure());
    return new Promise((resolve, reject) => {
      this.room = resolve;
      this.roomFailed = reject;
    });
  }

  finish(): Promise<Res> {
    if (this.code < 0) this.stream!.end();
    return this.result() as Promise<Res>;
  }

  private wake(): void {
    const wake = this.room;
    this.room = this.roomFailed = undefined;
    wake?.();
  }

  protected override onStatus(): void {
    super.onStatus();
    if (this.room === undefined) return;
    if (this.code === status.OK) return this.wake();
    const fail = this.roomFailed!;
    this.room = this.roomFailed = undefined;
    fail(this.failure());
  }
}

export function clientStream<Req, Res>(conn: H2Connection, m: H2Method<Req, Res>, what: string): ClientStream<Req, Res> {
  return new ClientStreamCall(conn, m, what, false).start();
}

/**
 * Messages queued for the reader before the stream is paused (HTTP/2 flow
 * control then holds the server back); data pieces count by their bytes,
 * a message as MESSAGE_WEIGHT.
 */
const MAX_QUEUED = 8;
const QUEUED_BYTES = 8 << 20;
const MESSAGE_WEIGHT = QUEUED_BYTES / MAX_QUEUED;

class ServerStreamCall<Req, Res> extends Call<Req, Res> implements AsyncIterableIterator<Res> {
  private readonly queue: Res[] = [];
  private readonly weights: number[] = [];
  private head = 0;
  private queued = 0;
  private paused = false;
  private wake: (() => void) | undefined;

  constructor(
    conn: H2Connection,
    method: H2Method<Req, Res>,
    private readonly what: string,
  ) {
    super(conn, method);
  }

  /** Sends the request and waits for the first message or the status: false if that is NOT_FOUND. */
  async run(req: Req): Promise<boolean> {
    this.open(req);
    if (this.head === this.queue.length && this.code < 0) await new Promise<void>((r) => (this.wake = r));
    if (this.head < this.queue.length || this.code === status.OK) return true;
    if (this.code === status.NOT_FOUND) return false;
    throw this.failure();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Res>> {
    while (this.head === this.queue.length && this.code < 0) await new Promise<void>((r) => (this.wake = r));
    if (this.head < this.queue.length) {
      const value = this.queue[this.head];
      this.queued -= this.weights[this.head];
      this.queue[this.head++] = undefined as Res;
      if (this.head === this.queue.length) this.queue.length = this.weights.length = this.head = 0;
      if (this.paused && this.queued < QUEUED_BYTES / 2) {
        this.paused = false;
        this.resume();
      }
      return { value, done: false };
    }
    if (this.code === status.OK) return { value: undefined, done: true };
    throw this.failure();
  }

  /** The reader stopped early (`break` in `for await`): cancel the call. */
  async return(): Promise<IteratorResult<Res>> {
    this.cancel();
    this.queue.length = this.weights.length = this.head = this.queued = 0;
    return { value: undefined, done: true };
  }

  protected override streamFrom(length: number, head: Buffer): number | undefined {
    return this.method.dataPieces ? blobChunkDataStart(length, head) : undefined;
  }

  protected override piece(bytes: Buffer): void {
    if (this.code < 0) this.onMessage({ data: bytes } as Res, bytes.length);
  }

  protected onMessage(msg: Res, weight = MESSAGE_WEIGHT): void {
    this.queue.push(msg);
    this.weights.push(weight);
    this.queued += weight;
    if (!this.paused && this.queued >= QUEUED_BYTES) {
      this.paused = true;
      this.pause();
    }
    this.wakeReader();
  }

  protected onStatus(): void {
    this.wakeReader();
  }

  private failure(): CastoreError {
    return fromServiceError(this.error(), this.what);
  }

  private wakeReader(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/**
 * Starts a server-streaming call and waits for its first message or status,
 * so that NOT_FOUND sent before any message yields `undefined` instead of a
 * stream that fails later.
 */
export async function serverStream<Req, Res>(conn: H2Connection, m: H2Method<Req, Res>, req: Req, what: string): Promise<AsyncIterableIterator<Res> | undefined> {
  const call = new ServerStreamCall(conn, m, what);
  return (await call.run(req)) ? call : undefined;
}
