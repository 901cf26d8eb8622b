// A promise wrapper around grpc-js unary calls, for the clients that stay
// on grpc-js (admin, stats); blobs, directories and PathInfo use h2/calls.ts.
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
