// A unary handler whose work stops when the client goes away: the body gets
// a signal that aborts on the call's 'cancelled' event (client cancel,
// deadline, or a dropped connection).
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { toStatus, type StatusObject } from '../grpc/status.js';
import { malformedStatus } from './decode.js';

export function cancellableUnary<Req, Res>(body: (req: Req, signal: AbortSignal) => Promise<Res | StatusObject>) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    const malformed = malformedStatus(call.request);
    if (malformed) return cb(malformed);
    const ac = new AbortController();
    const onCancel = () => ac.abort(new Error('call cancelled by the client'));
    call.once('cancelled', onCancel);
    body(call.request, ac.signal).then(
      (res) => (isStatus(res) ? cb(res) : cb(null, res)),
      (err) => cb(toStatus(err)),
    ).finally(() => call.off('cancelled', onCancel));
  };
}

function isStatus(x: unknown): x is StatusObject {
  return typeof x === 'object' && x !== null && 'code' in x && 'details' in x && typeof (x as StatusObject).code === 'number';
}
