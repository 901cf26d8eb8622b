// nixcastore.v1.BlobBatchService (protos/nixcastore/v1/blob_batch.proto):
// many blobs per call, over the store's own batches or one blob at a time.
import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Store } from '../store/store.js';
import { hasRequestSlices, type HasBlobsResponse, type PutBlobsRequest, type PutBlobsResponse } from '../castore/batch-messages.js';
import { batchesOf } from '../castore/blob-service.js';
import { B3_LEN } from '../castore/digest.js';
import { blobBatchServiceDef } from '../grpc/definitions.js';
import type { StatusObject } from '../grpc/status.js';
import { ProtoDecodeError } from '../proto/reader.js';
import { unaryHandler } from './handlers.js';
import { blobsWritten } from '../metrics/metrics.js';
import { tolerantDecoding } from './decode.js';
import { yieldToEventLoop } from '../util/yield.js';

/**
 * Digests decoded and looked up per turn of the event loop: a maximum Has
 * (~123k) takes ~60 turns of a few ms each instead of one of a second or
 * more, and holds no object per digest beyond its slice.
 */
const HAS_SLICE = 2048;

/** The service as the daemon serves it: Has takes its request undecoded (hasBlobs decodes it in slices). */
export function blobBatchServiceForServer() {
  const def = tolerantDecoding(blobBatchServiceDef());
  return { ...def, Has: { ...def.Has, requestDeserialize: (b: Buffer) => b } } as unknown as typeof def;
}

export function blobBatchHandlers(store: Store, maxMessageBytes: number): UntypedServiceImplementation {
  return {
    Has: unaryHandler<Buffer, HasBlobsResponse | StatusObject>(hasBlobs(store, maxMessageBytes)),
    Put: unaryHandler<PutBlobsRequest, PutBlobsResponse>(putBlobs(store)),
  };
}

/**
 * BlobBatchService.Has on the request's bytes, shared by the grpc-js
 * handler and the lean path (lean-blob.ts): decoded and answered slice by
 * slice, yielding to other clients in between and stopping once `signal`
 * says the client has gone.
 */
export function hasBlobs(store: Store, maxMessageBytes: number) {
  return async (req: Buffer, signal?: AbortSignal): Promise<HasBlobsResponse | StatusObject> => {
    const batches = await batchesOf(store.blobs);
    const present: boolean[] = [];
    try {
      for (const slice of hasRequestSlices(req, HAS_SLICE)) {
        if (present.length > 0) await yieldToEventLoop();
        signal?.throwIfAborted();
        const bad = slice.findIndex((d) => d.length !== B3_LEN);
        if (bad >= 0) return { code: status.INVALID_ARGUMENT, details: `digest ${present.length + bad}: invalid digest length` };
        for (const p of await batches.has(slice)) present.push(p);
      }
    } catch (err) {
      if (err instanceof ProtoDecodeError) return { code: status.INVALID_ARGUMENT, details: `malformed request: ${err.message}` };
      throw err;
    }
    return { present, maxPutBytes: maxMessageBytes };
  };
}

/** BlobBatchService.Put, shared by the grpc-js handler and the lean path (lean-blob.ts). */
export function putBlobs(store: Store) {
  return async (req: PutBlobsRequest): Promise<PutBlobsResponse> => {
    await (await batchesOf(store.blobs)).put(req.blobs);
    blobsWritten.inc(req.blobs.length);
    return {};
  };
}
