// One gRPC call on one HTTP/2 stream: sends framed requests, reassembles the
// response messages and settles on a status exactly once. The stream's
// events go to static handlers that find the call on the stream, so a call
// costs no closures; subclasses give the call its shape (calls.ts).
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { Writable, addAbortSignal } from 'node:stream';
import { status } from '../status-codes.js';
import { MAX_MESSAGE_BYTES } from '../client-settings.js';
import type { H2Connection, H2Method } from './connection.js';
import { framed, prefixFor, MessageReader, PREFIX_BYTES } from './framing.js';
import { GrpcError, codeForHttpStatus, failureStatus, grpcMessageIn, grpcStatusIn, isGrpcContentType } from './status.js';

const CALL = Symbol('gRPC call');
type CallStream = ClientHttp2Stream & { [CALL]: Call<unknown, unknown> };

/**
 * Node's own AbortError, caught once. A stream destroyed with it is reset
 * with RST_STREAM(CANCEL) and nothing else, whereas `close(CANCEL)` first
 * half-closes it, which tells the server the request is complete (a
 * cancelled Put would look finished). Node exports no such error, but it
 * is what `addAbortSignal` destroys a stream with.
 */
const CANCEL_ERROR: Error = (() => {
  let captured: Error | undefined;
  const probe = new Writable();
  probe.destroy = (err?: Error) => ((captured = err), probe);
  addAbortSignal(AbortSignal.abort(), probe);
  return captured ?? new Error('cancelled');
})();

/** Payloads from this size on are written after their prefix rather than copied behind it. */
const COPY_BELOW = 64 * 1024;

export abstract class Call<Req, Res> extends MessageReader {
  /** Undefined until started, and when the stream could not be opened. */
  protected stream: CallStream | undefined;
  private session: ClientHttp2Session | undefined;
  /** -1 while the call runs, then its gRPC status code. */
  protected code = -1;
  /** Our own text, or the trailers whose grpc-message is decoded only if an error is made of it. */
  protected details: string | IncomingHttpHeaders = '';
  private headers: IncomingHttpHeaders | undefined;
  private trailers: IncomingHttpHeaders | undefined;
  private streamError: Error | undefined;

  constructor(
    private readonly conn: H2Connection,
    protected readonly method: H2Method<Req, Res>,
  ) {
    super(MAX_MESSAGE_BYTES);
  }

  /** A response message arrived (the call is still running). */
  protected abstract onMessage(msg: Res): void;
  /** The call has settled: `code` and `details` are final. */
  protected abstract onStatus(): void;

  /**
   * Opens the stream and, given the request of a unary or server-streaming
   * call, sends it and half-closes; without one, the caller streams
   * requests with `send`. If the stream cannot be opened, the call settles
   * at once (UNAVAILABLE, INTERNAL).
   */
  protected open(req?: Req): void {
    let stream: CallStream;
    try {
      stream = this.conn.request(this.method.headers) as CallStream;
    } catch (err) {
      const e = err instanceof GrpcError ? err : new GrpcError(status.INTERNAL, (err as Error).message);
      this.settle(e.code, e.details);
      return;
    }
    this.stream = stream;
    this.session = stream.session as ClientHttp2Session;
    stream[CALL] = this as Call<unknown, unknown>;
    stream.on('response', Call.onResponse);
    stream.on('data', Call.onData);
    stream.on('trailers', Call.onTrailers);
    stream.on('end', Call.onEnd);
    stream.on('error', Call.onError);
    stream.on('close', Call.onClose);
    if (req !== undefined) this.send(req, true);
  }

  /**
   * Writes one request message and returns its size on the wire, or 0 if
   * it was refused (the call has failed). `end` half-closes after it.
   * `released`: see ClientStream.write. `written` is called once the
   * stream is done writing it (or failed to).
   */
  protected send(msg: Req, end: boolean, released?: () => void, written?: () => void): number {
    const s = this.stream!;
    const parts = this.method.split?.(msg);
    if (parts) return this.sendParts(parts, end, released, written);
    const payload = this.method.serialize(msg);
    released?.(); // serializing copied the message
    if (payload.length > MAX_MESSAGE_BYTES) {
      this.fail(status.RESOURCE_EXHAUSTED, `sent message larger than max (${payload.length} vs. ${MAX_MESSAGE_BYTES})`);
      return 0;
    }
    const done = written && ((): void => written());
    if (payload.length < COPY_BELOW) {
      const frame = framed(payload);
      if (done) s.write(frame, done);
      if (end) s.end(done ? undefined : frame);
      else if (!done) s.write(frame);
      return frame.length;
    }
    s.cork();
    s.write(prefixFor(payload.length));
    s.write(payload, done);
    if (end) s.end();
    else s.uncork();
    return PREFIX_BYTES + payload.length;
  }

  /** One message as its prefix and first part in one write, then its other parts as they are. */
  private sendParts(parts: Uint8Array[], end: boolean, released?: () => void, written?: () => void): number {
    const s = this.stream!;
    let length = 0;
    for (const p of parts) length += p.length;
    if (length > MAX_MESSAGE_BYTES) {
      released?.();
      this.fail(status.RESOURCE_EXHAUSTED, `sent message larger than max (${length} vs. ${MAX_MESSAGE_BYTES})`);
      return 0;
    }
    // A small first part (a field header) goes with the prefix, copied.
    const merged = parts.length > 0 && parts[0].length < COPY_BELOW ? 1 : 0;
    const start = prefixFor(length, merged ? parts[0].length : 0);
    if (merged) start.set(parts[0], PREFIX_BYTES);
    if (parts.length === merged) released?.(); // nothing is written as it is
    // Callbacks come in order, once a write is done or failed (also on a destroyed stream).
    const last = (): void => {
      if (parts.length > merged) released?.();
      written?.();
    };
    const callback = released || written ? last : undefined;
    s.cork();
    s.write(start, parts.length === merged ? callback : undefined);
    for (let i = merged; i < parts.length; i++) s.write(parts[i], i === parts.length - 1 ? callback : undefined);
    if (end) s.end();
    else s.uncork();
    return PREFIX_BYTES + length;
  }

  /** Ends the call from our side with RST_STREAM(CANCEL): CANCELLED. */
  cancel(): void {
    if (this.code < 0) this.fail(status.CANCELLED, 'call cancelled by the client');
  }

  /** The settled call's failure, for callers to convert. */
  protected error(): GrpcError {
    return new GrpcError(this.code, typeof this.details === 'string' ? this.details : grpcMessageIn(this.details));
  }

  protected pause(): void {
    this.stream?.pause();
  }

  protected resume(): void {
    this.stream?.resume();
  }

  protected message(payload: Buffer): void {
    if (this.code >= 0) return;
    let msg: Res;
    try {
      msg = this.method.deserialize(payload);
    } catch (err) {
      this.fail(status.INTERNAL, `cannot parse the response: ${(err as Error).message}`);
      return;
    }
    this.onMessage(msg);
  }

  /** Settles with a status of our own making and resets the stream, which the server need not finish. */
  protected fail(code: number, details: string): void {
    if (this.stream !== undefined && !this.stream.closed) this.stream.destroy(CANCEL_ERROR);
    this.settle(code, details);
  }

  private settle(code: number, details: string | IncomingHttpHeaders): void {
    this.code = code;
    this.details = details;
    if (this.stream !== undefined) this.conn.callEnded();
    this.onStatus();
  }

  /** The server has sent everything: the status is in the trailers or a trailers-only response. */
  private ended(): void {
    if (this.code >= 0) return;
    // Trailers, or the headers of a trailers-only response.
    const source = this.trailers ?? this.headers;
    const code = grpcStatusIn(source);
    if (code < 0) {
      const f = failureStatus(this.streamError, this.stream!.rstCode, this.session!.destroyed);
      return this.fail(f.code, f.details);
    }
    if (code === status.OK && this.midMessage) return this.fail(status.INTERNAL, 'the response ended inside a message');
    // An early answer (e.g. a refused Put) while we still send: stop sending.
    if (!this.stream!.writableEnded) this.stream!.destroy(CANCEL_ERROR);
    this.settle(code, source!);
  }

  private static onResponse(this: CallStream, headers: IncomingHttpHeaders & { ':status'?: number }): void {
    const call = this[CALL];
    call.headers = headers;
    const http = headers[':status'];
    const ct = headers['content-type'];
    // Not a gRPC answer (a proxy's error page, …): the HTTP status says what happened.
    if ((http !== 200 || !isGrpcContentType(ct)) && headers['grpc-status'] === undefined && call.code < 0) {
      call.fail(codeForHttpStatus(http === 200 ? undefined : http), `received HTTP status ${http} with content-type ${ct ?? '(none)'}`);
    }
  }

  private static onData(this: CallStream, chunk: Buffer): void {
    const call = this[CALL];
    if (call.code >= 0) return;
    const bad = call.readData(chunk);
    if (bad) call.fail(bad.code, bad.details);
  }

  private static onTrailers(this: CallStream, trailers: IncomingHttpHeaders): void {
    this[CALL].trailers = trailers;
  }

  private static onEnd(this: CallStream): void {
    this[CALL].ended();
  }

  private static onError(this: CallStream, err: Error): void {
    this[CALL].streamError ??= err;
  }

  private static onClose(this: CallStream): void {
    const call = this[CALL];
    if (call.code >= 0) return;
    const f = failureStatus(call.streamError, this.rstCode, call.session!.destroyed);
    call.settle(f.code, f.details);
  }
}
