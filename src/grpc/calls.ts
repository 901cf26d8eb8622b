// Promise / async-iterator wrappers around grpc-js calls.
import { once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { fromServiceError, isServiceError } from './status.js';

/** A unary call; aborting `signal` cancels it on the server too (its handler sees the stream close). */
export function unary<Req, Res>(client: grpc.Client, m: MethodDefinition<Req, Res>, req: Req, signal?: AbortSignal): Promise<Res> {
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => call.cancel();
    const call = client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, (err, res) => {
      signal?.removeEventListener('abort', onAbort);
      if (err && signal?.aborted) reject(signal.reason);
      else if (err) reject(err);
      else resolve(res!);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Unary call where NOT_FOUND means "absent". Other failures become CastoreErrors. */
export async function unaryOptional<Req, Res>(
  client: grpc.Client,
  m: MethodDefinition<Req, Res>,
  req: Req,
  what: string,
): Promise<Res | undefined> {
  try {
    return await unary(client, m, req);
  } catch (err) {
    if (isServiceError(err) && err.code === status.NOT_FOUND) return undefined;
    throw fromServiceError(err, what);
  }
}

/**
 * Starts a server-streaming call and waits for its first event, so that a
 * NOT_FOUND status (sent before any message) yields `undefined` instead of a
 * stream that fails later.
 */
export async function serverStream<Req, Res>(
  client: grpc.Client,
  m: MethodDefinition<Req, Res>,
  req: Req,
  what: string,
): Promise<AsyncIterable<Res> | undefined> {
  const call = client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, req);
  const it = (call as unknown as AsyncIterable<Res>)[Symbol.asyncIterator]();
  let first: IteratorResult<Res>;
  try {
    first = await it.next();
  } catch (err) {
    if (isServiceError(err) && err.code === status.NOT_FOUND) return undefined;
    throw fromServiceError(err, what);
  }
  return (async function* () {
    try {
      if (first.done) return;
      yield first.value;
      for (;;) {
        let r: IteratorResult<Res>;
        try {
          r = await it.next();
        } catch (err) {
          throw fromServiceError(err, what);
        }
        if (r.done) return;
        yield r.value;
      }
    } finally {
      call.cancel();
    }
  })();
}

export interface ClientStream<Req, Res> {
  write(msg: Req): Promise<void>;
  finish(): Promise<Res>;
  cancel(): void;
}

export function clientStream<Req, Res>(client: grpc.Client, m: MethodDefinition<Req, Res>, what: string): ClientStream<Req, Res> {
  let settle!: { resolve: (r: Res) => void; reject: (e: unknown) => void };
  const result = new Promise<Res>((resolve, reject) => (settle = { resolve, reject }));
  result.catch(() => {}); // observed through finish()
  let failed: unknown;
  const call = client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, (err, res) => {
    if (err) {
      failed = err;
      settle.reject(fromServiceError(err, what));
    } else settle.resolve(res!);
  });
  return {
    async write(msg) {
      if (failed) throw fromServiceError(failed, what);
      if (!call.write(msg)) {
        // Either drained or the call ended (then the callback has the reason).
        await Promise.race([once(call, 'drain'), result.then(() => {}, () => {})]);
        if (failed) throw fromServiceError(failed, what);
      }
    },
    finish() {
      call.end();
      return result;
    },
    cancel() {
      call.cancel();
    },
  };
}
