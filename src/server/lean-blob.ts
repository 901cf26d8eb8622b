// BlobService Stat and Put, and BlobBatchService Has and Put, served
// straight on node:http2 streams. A copy makes one Put (and often one
// Stat) per file, tens of thousands of calls for a few hundred MB; grpc-js's
// per-call machinery (interceptors, metadata objects, event plumbing) was
// most of the daemon's CPU for them. Here a large blob's chunks, and the
// blobs of a batch, are taken from the network reads they arrive in,
// without copying them into message buffers. The handlers' bodies are the
// grpc-js ones (handlers.ts, batch-handlers.ts): only the transport
// differs. Calls this path does not speak — compression, deadlines — and
// every other method stay with grpc-js.
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { status } from '@grpc/grpc-js';
import type { Store } from '../store/store.js';
import type * as C from '../castore/messages.js';
import { blobBatchServiceDef, blobFromPathServiceDef, blobServiceDef, PACKAGES } from '../grpc/definitions.js';
import type { BatchBlob } from '../castore/batch-messages.js';
import { hasBlobs, putBlobs } from './batch-handlers.js';
import { isGrpcContentType } from '../grpc/h2/status.js';
import type { StatusObject } from '../grpc/status.js';
import { DataPiece, LeanCall, ParsedBatch, statusOf, type Mode } from './lean-call.js';
import { MalformedRequest, malformedError, malformedStatus, tolerantDecoding } from './decode.js';
import { digestProblem, putBlob, statBlob, DEFAULT_HELD_PER_WRITER } from './handlers.js';
import { putFromPath } from './from-path.js';
import { serveBlobRead } from './lean-read.js';
import { isProbe } from '../castore/from-path-messages.js';
import { writeRefusalFor, type AccessPolicy } from './access.js';
import type { ByteBudget } from '../util/byte-budget.js';

/** Handles one stream; false leaves it to grpc-js. */
export type LeanRoute = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;

export function leanBlobRoute(store: Store, maxMessageBytes: number, access: AccessPolicy, budget: ByteBudget, fromPathRoots: string[] = []): LeanRoute {
  const def = tolerantDecoding(blobServiceDef());
  const stat = statBlob(store);
  const put = putBlob(store, budget);
  const routes = new Map<string, (call: LeanCall) => void>();
  for (const pkg of PACKAGES) {
    const p = `/${pkg}.castore.v1.BlobService/`;
    routes.set(p + 'Stat', (call) =>
      void unary(call, async (bytes) => {
        const req = def.Stat.requestDeserialize(bytes as Buffer); // only batch Puts are parsed
        const bad = malformedStatus(req);
        if (bad) return bad;
        const res = await stat(req);
        return 'code' in res ? res : def.Stat.responseSerialize(res);
      }),
    );
    routes.set(p + 'Read', (call) =>
      void (async () => {
        const req = await requestOf(call, (bytes) => def.Read.requestDeserialize(bytes));
        if (req === undefined) return;
        const bad = digestProblem(req.digest);
        if (bad) return call.finish(bad);
        await serveBlobRead(call, store.blobs, req.digest);
      })(),
    );
    routes.set(p + 'Put', (call) => {
      const refusal = writeRefusalFor(access, call.header('authorization'));
      if (refusal) return call.finish(refusal);
      // Pieces already queued are taken without a promise each: a GiB
      // arrives in ~65,000 DATA frames, often several per event-loop turn.
      const chunk = (m: Buffer | DataPiece | ParsedBatch | undefined): C.BlobChunk | undefined => {
        if (m === undefined || m instanceof DataPiece) return m;
        const c = def.Put.requestDeserialize(m as Buffer); // only batch Puts are parsed
        if (c instanceof MalformedRequest) throw malformedError(c);
        return c;
      };
      const next = (): C.BlobChunk | undefined | Promise<C.BlobChunk | undefined> => {
        const queued = call.takeQueued();
        return queued !== undefined ? chunk(queued) : call.take().then(chunk);
      };
      put(next, call.signal).then(
        (res) => call.reply(def.Put.responseSerialize(res)),
        (err) => call.finish(statusOf(err)),
      );
    });
  }
  const batch = tolerantDecoding(blobBatchServiceDef());
  const has = hasBlobs(store, maxMessageBytes);
  const putMany = putBlobs(store);
  routes.set(batch.Has.path, (call) =>
    void unary(call, async (bytes) => {
      const res = await has(bytes as Buffer, call.signal); // decoded in slices, as it is looked up
      return 'code' in res ? res : batch.Has.responseSerialize(res);
    }),
  );
  routes.set(batch.Put.path, (call) => {
    const refusal = writeRefusalFor(access, call.header('authorization'));
    if (refusal) return call.finish(refusal);
    void unary(call, async (m) => {
      let blobs: BatchBlob[];
      if (m instanceof ParsedBatch) blobs = m.blobs;
      else {
        const req = batch.Put.requestDeserialize(m);
        const bad = malformedStatus(req);
        if (bad) return bad;
        blobs = req.blobs;
      }
      const res = batch.Put.responseSerialize(await putMany({ blobs }));
      call.recycle(); // the blobs are stored: their memory may take the next batch
      return res;
    });
  });
  if (fromPathRoots.length > 0 && !access.readOnly) {
    const fromPath = tolerantDecoding(blobFromPathServiceDef());
    const heldMax = store.blobs.heldPerWriter ?? DEFAULT_HELD_PER_WRITER;
    routes.set(fromPath.Put.path, (call) => {
      const refusal = writeRefusalFor(access, call.header('authorization'));
      if (refusal) return call.finish(refusal);
      void unary(call, async (bytes) => {
        const req = fromPath.Put.requestDeserialize(bytes as Buffer);
        const bad = malformedStatus(req);
        if (bad) return bad;
        // The probe: which directories are read for this client (none unless it is on this machine).
        if (isProbe(req)) return fromPath.Put.responseSerialize({ digest: Buffer.alloc(0), roots: call.overUnixSocket ? fromPathRoots : [] });
        if (!call.overUnixSocket) return { code: status.PERMISSION_DENIED, details: 'BlobFromPathService reads files only for clients on this machine (a unix socket): send the bytes with BlobService.Put' };
        const held = budget.holding();
        try {
          const digest = await putFromPath(store.blobs, fromPathRoots, req, call.signal, held, heldMax);
          return fromPath.Put.responseSerialize({ digest, roots: [] });
        } finally {
          held.release();
        }
      });
    });
  }
  const modes = new Map<string, Mode>([...routes.keys()].map((path) => [path, path === batch.Put.path ? 'batch' : path.endsWith('.BlobService/Put') ? 'chunks' : 'whole']));
  return (stream, headers) => {
    const path = headers[':path'] as string;
    const route = routes.get(path);
    if (!route || !speaksLean(headers)) return false;
    route(new LeanCall(stream, headers, maxMessageBytes, modes.get(path)!, budget.holding()));
    return true;
  };
}

/** What this path handles: plain gRPC without compression or a deadline. */
function speaksLean(h: IncomingHttpHeaders): boolean {
  const enc = h['grpc-encoding'];
  return h[':method'] === 'POST' && isGrpcContentType(h['content-type']) && (enc === undefined || enc === 'identity') && h['grpc-timeout'] === undefined;
}

/** A call's one request message (a batch Put's: its blobs, parsed); undefined once the call has been answered with what was wrong. */
async function onlyMessage(call: LeanCall): Promise<Buffer | ParsedBatch | undefined> {
  const m = await call.next();
  if (m === undefined) return void call.finish({ code: status.UNIMPLEMENTED, details: `Received no request message for ${call.path}` });
  if ((await call.next()) !== undefined) return void call.finish({ code: status.UNIMPLEMENTED, details: `Received a second request message for ${call.path}` });
  return m;
}

/** A call's one request message, decoded; undefined once the call has been answered with what was wrong. */
async function requestOf<T extends object>(call: LeanCall, decode: (bytes: Buffer) => T | MalformedRequest): Promise<T | undefined> {
  try {
    const bytes = await onlyMessage(call);
    if (bytes === undefined) return undefined;
    const req = decode(bytes as Buffer);
    const bad = malformedStatus(req);
    if (bad) return void call.finish(bad);
    return req as T;
  } catch (err) {
    call.finish(statusOf(err));
    return undefined;
  }
}

/** A unary call: its one request (as onlyMessage gives it) to `body`, whose answer ends the call. */
async function unary(call: LeanCall, body: (req: Buffer | ParsedBatch) => Promise<Buffer | StatusObject>): Promise<void> {
  try {
    const req = await onlyMessage(call);
    if (req === undefined) return;
    const res = await body(req);
    if (Buffer.isBuffer(res)) call.reply(res);
    else call.finish(res);
  } catch (err) {
    call.finish(statusOf(err));
  }
}
