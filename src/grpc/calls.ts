// Promise wrappers around grpc-js unary and server-streaming calls, for the
// clients that stay on grpc-js (admin, stats); blobs, directories and
// PathInfo use h2/calls.ts.
import type * as grpc from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/grpc-js';

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

/**
 * A server-streaming call: `onMessage` gets each response as it arrives;
 * resolves once the server ends the call with OK, rejects with its status
 * otherwise (or with what `onMessage` threw, cancelling the call).
 */
export function serverStream<Req, Res>(client: grpc.Client, m: MethodDefinition<Req, Res>, req: Req, onMessage: (res: Res) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, req);
    call.on('data', (res: Res) => {
      try {
        onMessage(res);
      } catch (err) {
        reject(err);
        call.cancel();
      }
    });
    // A status other than OK: 'error' at once, before the 'end' that follows the last message either way.
    call.on('error', reject);
    call.once('end', () => resolve());
  });
}
