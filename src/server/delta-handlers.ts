// nixcastore.v1.BlobDeltaService (protos/nixcastore/v1/blob_delta.proto)
// over the daemon's DeltaStore: both calls are writes (a FindBase makes the
// store read and chunk a blob), so both need the write token.
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { DeltaStore } from '../castore/delta/delta-store.js';
import type { DeltaOp, DeltaPart, FindBaseRequest, FindBaseResponse, PutDeltaResponse } from '../castore/delta/delta-messages.js';
import { invalid } from '../castore/errors.js';
import { blobsWritten, deltaBases, deltaBytes } from '../metrics/metrics.js';
import { UNLIMITED, type ByteBudget } from '../util/byte-budget.js';
import { clientStreamHandler, unaryHandler, DEFAULT_HELD_PER_WRITER } from './handlers.js';
import { overBudget } from './request-budget.js';

export function blobDeltaHandlers(deltas: DeltaStore, budget: ByteBudget = UNLIMITED()): UntypedServiceImplementation {
  const heldMax = deltas.blobs.heldPerWriter ?? DEFAULT_HELD_PER_WRITER;
  return {
    FindBase: unaryHandler<FindBaseRequest, FindBaseResponse>(async (req, signal) => {
      const found = await deltas.findBase(req.hooks, signal);
      // The empty FindBase is a client's probe, not a search.
      if (req.hooks.length > 0) deltaBases.inc({ result: found ? 'found' : 'none' });
      return found ?? { baseSize: 0, chunks: [] };
    }),
    Put: clientStreamHandler<DeltaPart, PutDeltaResponse>(async (msgs, signal) => {
      const first = await msgs.next();
      if (first.done || first.value.kind !== 'header') throw invalid('the first DeltaPart must be the header (digest, size, base)');
      const held = budget.holding();
      let written = 0;
      let fromBase = 0;
      // The store's writer may hold what it was given until the end: counted against the daemon's budget, as for a Put.
      async function* ops(): AsyncGenerator<DeltaOp> {
        for await (const m of msgs) {
          if (m.kind === 'header') throw invalid('a DeltaPart header after the first part');
          const op: DeltaOp = m.kind === 'data' ? { data: m.data } : { offset: m.offset, length: m.length };
          written += m.kind === 'data' ? m.data.length : m.length;
          if (m.kind === 'copy') fromBase += m.length;
          if (held.bytes < heldMax && !held.set(Math.min(written, heldMax))) throw overBudget(held);
          yield op;
        }
      }
      try {
        const digest = await deltas.putDelta(first.value, ops(), signal);
        blobsWritten.inc();
        deltaBytes.inc({ source: 'base' }, fromBase);
        deltaBytes.inc({ source: 'sent' }, written - fromBase);
        return { digest };
      } finally {
        held.release();
      }
    }),
  };
}
