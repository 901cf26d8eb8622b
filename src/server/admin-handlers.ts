// nixcastore.v1.AdminService (protos/nixcastore/v1/admin.proto): pins and
// garbage collection over the daemon's store. Every method is a write:
// it needs the token and a --read-only daemon refuses it (daemon.ts).
import { status, type ServerUnaryCall, type sendUnaryData, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { remotePolicyOf, type GcAdmin } from '../gc/admin.js';
import type { CollectGarbageRequest, CollectGarbageResponse, Empty, ListPinsResponse, RemovePinRequest, SetPinRequest } from '../grpc/admin-messages.js';
import { toStatus, type StatusObject } from '../grpc/status.js';
import { malformedStatus } from './decode.js';
import { unaryHandler } from './handlers.js';

export function adminHandlers(admin: GcAdmin | undefined, log: (msg: string) => void): UntypedServiceImplementation {
  const unsupported = async (): Promise<StatusObject> => ({
    code: status.UNIMPLEMENTED,
    details: "this daemon's store has no garbage collector yet (only file:// stores have one)",
  });
  if (!admin) {
    return { SetPin: unaryHandler(unsupported), RemovePin: unaryHandler(unsupported), ListPins: unaryHandler(unsupported), CollectGarbage: unaryHandler(unsupported) };
  }
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
    // The collection stops (deleting nothing) if the caller goes away before its delete phase.
    CollectGarbage: (call: ServerUnaryCall<CollectGarbageRequest, CollectGarbageResponse>, cb: sendUnaryData<CollectGarbageResponse>) => {
      const malformed = malformedStatus(call.request);
      if (malformed) return cb(malformed);
      try {
        remotePolicyOf(call.request);
      } catch (err) {
        return cb(toStatus(err));
      }
      const ac = new AbortController();
      call.once('cancelled', () => ac.abort(new Error('the caller went away; nothing was deleted')));
      admin.collect({ ...call.request, signal: ac.signal }, log).then(
        (report) => cb(null, { reportJson: JSON.stringify(report) }),
        (err) => cb(toStatus(err)),
      );
    },
  } as UntypedServiceImplementation;
}
