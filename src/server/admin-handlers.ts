// nixcastore.v1.AdminService (protos/nixcastore/v1/admin.proto): pins and
// garbage collection over the daemon's store. Every method is a write:
// it needs the token and a --read-only daemon refuses it (daemon.ts).
import { status, type ServerUnaryCall, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { remotePolicyOf, type GcAdmin } from '../gc/admin.js';
import type { GcReport } from '../gc/report.js';
import type { CollectGarbageRequest, CollectGarbageResponse, Empty, ListPinsResponse, RemovePinRequest, SetPinRequest } from '../grpc/admin-messages.js';
import { adminServiceDef } from '../grpc/definitions.js';
import { toStatus, type StatusObject } from '../grpc/status.js';
import { malformedStatus } from './decode.js';
import { unaryHandler } from './handlers.js';
import { collectWithProgress } from './gc-progress-stream.js';

/** Answers any call, unary or streaming, with `st`. */
const answering =
  (st: StatusObject) =>
  (call: { emit(event: 'error', st: StatusObject): boolean }, cb?: (st: StatusObject) => void): void =>
    cb ? cb(st) : void call.emit('error', st);

export function adminHandlers(admin: GcAdmin | undefined, log: (msg: string) => void): UntypedServiceImplementation {
  if (!admin) {
    const unsupported = answering({ code: status.UNIMPLEMENTED, details: "this daemon's store has no garbage collector (only a file:// or s3:// store serving all three services has one)" });
    return Object.fromEntries(Object.keys(adminServiceDef()).map((m) => [m, unsupported])) as unknown as UntypedServiceImplementation;
  }
  /**
   * The caller's collection, or why it does not run. It stops, deleting
   * nothing, if the caller goes away before its delete phase.
   */
  const start = (call: ServerUnaryCall<CollectGarbageRequest, unknown>, collectorLog: (msg: string) => void): Promise<GcReport> | StatusObject => {
    const malformed = malformedStatus(call.request);
    if (malformed) return malformed;
    try {
      remotePolicyOf(call.request);
    } catch (err) {
      return toStatus(err);
    }
    const ac = new AbortController();
    const goneAway = () => ac.abort(new Error('the caller went away; nothing was deleted'));
    if (call.cancelled) goneAway();
    else call.once('cancelled', goneAway);
    return admin.collect({ ...call.request, signal: ac.signal }, collectorLog);
  };
  return {
    SetPin: unaryHandler<SetPinRequest, Empty | StatusObject>(async (req) => {
      if (!req.pin) return { code: status.INVALID_ARGUMENT, details: 'pin is not set' };
      await admin.setPin(req.pin.name, req.pin.storePaths);
      log(`pin ${req.pin.name}: ${req.pin.storePaths.length} paths`);
      return {} as Empty;
    }),
    RemovePin: unaryHandler<RemovePinRequest, Empty | StatusObject>(async (req) => {
      if (await admin.removePin(req.name)) return {} as Empty;
      return { code: status.NOT_FOUND, details: `there is no pin ${JSON.stringify(req.name)}` };
    }),
    ListPins: unaryHandler<Empty, ListPinsResponse>(async () => ({ pins: (await admin.listPins()).map((p) => ({ name: p.name, storePaths: p.paths })) })),
    CollectGarbage: (call: ServerUnaryCall<CollectGarbageRequest, CollectGarbageResponse>, cb: sendUnaryData<CollectGarbageResponse>) => {
      const started = start(call, log);
      if (!(started instanceof Promise)) return cb(started);
      started.then(
        (report) => cb(null, { reportJson: JSON.stringify(report) }),
        (err) => cb(toStatus(err)),
      );
    },
    // Its lines also go to the daemon's own log, as CollectGarbage's do.
    CollectGarbageWithProgress: collectWithProgress(start, log),
  } as UntypedServiceImplementation;
}
