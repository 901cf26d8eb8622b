// The gRPC backends' stats(): one nixcastore.v1.StoreStats call to the
// daemon behind the address. A server without it (tvix-store, snix, an
// older nix-castore) gets an error that says so.
import { status } from '@grpc/grpc-js';
import { acquireClient } from './channel.js';
import { storeStatsServiceDef } from './definitions.js';
import { unary } from './calls.js';
import { fromServiceError, isServiceError } from './status.js';
import { CastoreError } from '../castore/errors.js';
import type { StoreStats } from '../store/store-stats.js';

const def = storeStatsServiceDef();

// The blob, directory and PathInfo backends of one address ask together (stats of a whole store): one call.
const inFlight = new Map<string, Promise<StoreStats>>();

export function fetchStoreStats(addr: string): Promise<StoreStats> {
  let p = inFlight.get(addr);
  if (!p) {
    p = callStoreStats(addr).finally(() => inFlight.delete(addr));
    inFlight.set(addr, p);
  }
  return p;
}

async function callStoreStats(addr: string): Promise<StoreStats> {
  const shared = acquireClient(addr);
  try {
    await shared.ready;
    await shared.answering();
    return await unary(shared.client, def.Get, {});
  } catch (err) {
    if (isServiceError(err) && err.code === status.UNIMPLEMENTED) {
      throw new CastoreError('internal', `${addr} does not count its store (no nixcastore.v1.StoreStats: not a nix-castore daemon, or an older one): ${err.details}`);
    }
    throw fromServiceError(err, 'StoreStats Get');
  } finally {
    shared.release();
  }
}
