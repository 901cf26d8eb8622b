// The upload thread (worker-uploads.ts): a BlobUploader over its own gRPC
// connection, fed batches of blobs, answering in batches.
import { parentPort, workerData } from 'node:worker_threads';
import { GrpcBlobService } from '../grpc/backends/grpc-blob-service.js';
import { CastoreError } from '../castore/errors.js';
import { BlobUploader } from './blob-uploader.js';
import type { UploadBatch, UploadReply, UploadWorkerData } from './worker-uploads.js';
import { B3_LEN } from '../castore/digest.js';

const port = parentPort!;
const data = workerData as UploadWorkerData;
// The parent sends each digest once per run (it keeps the run's dedup), so this side keeps no digests.
const uploader = new BlobUploader(new GrpcBlobService(data.addr), data.concurrency, data.retry, (msg) => port.postMessage({ type: 'log', msg } satisfies UploadReply), { dedup: false });

let results: Extract<UploadReply, { type: 'done' }>['results'] = [];

function answer(id: number, err?: unknown): void {
  if (err === undefined) results.push({ id });
  else results.push({ id, error: { message: err instanceof Error ? err.message : String(err), kind: err instanceof CastoreError ? err.kind : undefined } });
  if (results.length === 1) setImmediate(flushAnswers);
}

function flushAnswers(): void {
  const batch = results;
  results = [];
  port.postMessage({ type: 'done', results: batch, stats: uploader.stats } satisfies UploadReply);
}

port.on('message', ({ requests, digests, small, shared }: UploadBatch) => {
  for (let i = 0; i < requests.length; i++) {
    const r = requests[i];
    // Structured cloning gives plain Uint8Arrays; the uploader works on Buffers.
    const digest = Buffer.from(digests.buffer, digests.byteOffset + i * B3_LEN, B3_LEN);
    const source =
      r.bytes !== undefined
        ? { bytes: r.bytes }
        : r.slab !== undefined
          ? { bytes: Buffer.from(shared[r.slab], r.smallAt, r.smallLength) }
          : r.smallAt !== undefined
            ? { bytes: Buffer.from(small.buffer, small.byteOffset + r.smallAt, r.smallLength) }
            : { file: typeof r.file === 'string' ? r.file : Buffer.from(r.file!) };
    uploader.ensure(digest, r.size, source).then(
      () => answer(r.id),
      (err) => answer(r.id, err),
    );
  }
});
