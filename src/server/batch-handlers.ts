// nixcastore.v1.BlobBatchService (protos/nixcastore/v1/blob_batch.proto):
// many blobs per call, over the store's own batches or one blob at a time.
import { status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Store } from '../store/store.js';
import type { HasBlobsRequest, HasBlobsResponse, PutBlobsRequest, PutBlobsResponse } from '../castore/batch-messages.js';
import { batchesOf } from '../castore/blob-service.js';
import { B3_LEN } from '../castore/digest.js';
import type { StatusObject } from '../grpc/status.js';
import { unaryHandler } from './handlers.js';
import { blobsWritten } from '../metrics/metrics.js';

export function blobBatchHandlers(store: Store, maxMessageBytes: number): UntypedServiceImplementation {
  return {
    Has: unaryHandler<HasBlobsRequest, HasBlobsResponse | StatusObject>(hasBlobs(store, maxMessageBytes)),
    Put: unaryHandler<PutBlobsRequest, PutBlobsResponse>(putBlobs(store)),
  };
}

/** BlobBatchService.Has, shared by the grpc-js handler and the lean path (lean-blob.ts). */
export function hasBlobs(store: Store, maxMessageBytes: number) {
  return async (req: HasBlobsRequest): Promise<HasBlobsResponse | StatusObject> => {
    const bad = req.digests.findIndex((d) => d.length !== B3_LEN);
    if (bad >= 0) return { code: status.INVALID_ARGUMENT, details: `digest ${bad}: invalid digest length` };
    const present = await (await batchesOf(store.blobs)).has(req.digests);
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
