// gRPC handlers for the three tvix services over any Store, with the
// semantics and status codes of wire.md §5–6.
import { once } from 'node:events';
import { status, type UntypedServiceImplementation, type ServerUnaryCall, type ServerReadableStream, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import type { Store } from '../store/store.js';
import type * as C from '../castore/messages.js';
import { ACCEPTED } from '../castore/blob-service.js';
import type * as S from '../store/messages.js';
import { B3_LEN, b3String } from '../castore/digest.js';
import { decodedDirectoryBytes, nameProblem, nodeContentProblem } from '../castore/directory.js';
import { toStatus, type StatusObject } from '../grpc/status.js';
import { STORE_DIGEST_LEN } from '../store/validate-pathinfo.js';
import { MalformedRequest, malformedError, malformedStatus } from './decode.js';
import { blobsWritten, directoriesWritten, pathInfosWritten } from '../metrics/metrics.js';
import { cancellableUnary } from './cancellable.js';
import { fileSizeChecks } from '../store/check-content.js';
import { UNLIMITED, type ByteBudget } from '../util/byte-budget.js';
import { overBudget } from './request-budget.js';
import { sendBlob } from './blob-read.js';

const fail = (code: status, details: string): StatusObject => ({ code, details });

/** INVALID_ARGUMENT unless `d` is a BLAKE3 digest's length (the lean path's Read checks the same). */
export function digestProblem(d: Uint8Array | undefined): StatusObject | undefined {
  if (d === undefined || d.length !== B3_LEN) return fail(status.INVALID_ARGUMENT, 'invalid digest length');
  return undefined;
}

/**
 * Reads a client stream; a cancelled call ends the loop with an error instead
 * of hanging. Built on events rather than `for await` over the call: Node 20's
 * stream iterator creates an AbortError, stack trace and all, every time it
 * finishes, which costs more than storing a small blob.
 */
async function* incoming<T>(call: ServerReadableStream<T, unknown>): AsyncGenerator<T> {
  const queue: T[] = [];
  let head = 0;
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (m: T) => {
    queue.push(m);
    if (queue.length - head >= MAX_QUEUED) call.pause();
    notify();
  };
  const onEnd = () => {
    ended = true;
    notify();
  };
  const onError = (err: Error) => {
    failure ??= err;
    notify();
  };
  const onCancel = () => onError(new Error('call cancelled by the client'));
  call.on('data', onData);
  call.on('end', onEnd);
  call.on('error', onError);
  call.on('cancelled', onCancel);
  try {
    for (;;) {
      if (failure) throw failure;
      if (head < queue.length) {
        const m = queue[head];
        queue[head++] = undefined as T;
        if (head === queue.length) {
          queue.length = head = 0;
          if (call.isPaused()) call.resume();
        }
        if (m instanceof MalformedRequest) throw malformedError(m);
        yield m;
        continue;
      }
      if (ended) return;
      await new Promise<void>((r) => (wake = r));
    }
  } finally {
    call.off('data', onData);
    call.off('end', onEnd);
    call.off('error', onError);
    call.off('cancelled', onCancel);
  }
}

/** Messages a client stream may have received but not yet handed on, before it is paused. */
const MAX_QUEUED = 4;

async function send<T>(call: ServerWritableStream<unknown, T>, msg: T): Promise<void> {
  if (call.cancelled) throw new Error('call cancelled by the client');
  if (!call.write(msg)) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
}

/** Runs a server-streaming body; any thrown error becomes the call's status. */
function streaming<Req, Res>(body: (req: Req, call: ServerWritableStream<Req, Res>) => Promise<StatusObject | void>) {
  return (call: ServerWritableStream<Req, Res>) => {
    const malformed = malformedStatus(call.request);
    if (malformed) return void call.emit('error', malformed);
    body(call.request, call).then(
      (st) => (st ? call.emit('error', st) : call.end()),
      (err) => call.emit('error', toStatus(err)),
    );
  };
}

export function unaryHandler<Req, Res>(body: (req: Req, signal: AbortSignal) => Promise<Res | StatusObject>) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    const malformed = malformedStatus(call.request);
    if (malformed) return cb(malformed);
    // Long calls (batch Has) stop once their client has gone away.
    const ac = new AbortController();
    call.once('cancelled', () => ac.abort(new Error('call cancelled by the client')));
    body(call.request, ac.signal).then(
      (res) => (isStatus(res) ? cb(res) : cb(null, res)),
      (err) => cb(toStatus(err)),
    );
  };
}

/**
 * Runs a client-streaming body. `signal` aborts when the client goes away:
 * grpc-js clients half-close before they reset a cancelled stream, so the
 * input can look complete; backends check the signal before publishing.
 */
export function clientStreamHandler<Req, Res>(body: (msgs: AsyncGenerator<Req>, signal: AbortSignal) => Promise<Res>) {
  return (call: ServerReadableStream<Req, Res>, cb: sendUnaryData<Res>) => {
    const ac = new AbortController();
    call.once('cancelled', () => ac.abort(new Error('call cancelled by the client')));
    body(incoming(call), ac.signal).then(
      (res) => cb(null, res),
      (err) => cb(toStatus(err)),
    );
  };
}

function isStatus(x: unknown): x is StatusObject {
  return typeof x === 'object' && x !== null && 'code' in x && 'details' in x && typeof (x as StatusObject).code === 'number';
}

export function blobHandlers(store: Store, budget: ByteBudget = UNLIMITED()): UntypedServiceImplementation {
  const put = putBlob(store, budget);
  return {
    Stat: unaryHandler<C.StatBlobRequest, C.StatBlobResponse | StatusObject>(statBlob(store)),
    Read: streaming<C.ReadBlobRequest, C.BlobChunk>(async (req, call) => {
      const bad = digestProblem(req.digest);
      if (bad) return bad;
      if (!(await sendBlob(store.blobs, req.digest, call))) return fail(status.NOT_FOUND, `blob ${b3String(req.digest)} not found`);
    }),
    Put: clientStreamHandler<C.BlobChunk, C.PutBlobResponse>((msgs, signal) => put(nextOf(msgs), signal)),
  };
}

/** BlobService.Stat, shared by the grpc-js handler and the lean path (lean-blob.ts). */
export function statBlob(store: Store) {
  return async (req: C.StatBlobRequest): Promise<C.StatBlobResponse | StatusObject> => {
    const bad = digestProblem(req.digest);
    if (bad) return bad;
    const st = await store.blobs.stat(req.digest);
    if (!st) return fail(status.NOT_FOUND, `blob ${b3String(req.digest)} not found`);
    return { chunks: st.chunks, bao: new Uint8Array(0) };
  };
}

/** What a store's blob writer may keep in memory when its service does not say (BlobService.heldPerWriter). */
export const DEFAULT_HELD_PER_WRITER = 4 << 20;

/**
 * BlobService.Put, shared by the grpc-js handler and the lean path
 * (lean-blob.ts). The bytes the store's writer may still hold in memory
 * count against `budget` until the Put ends: an unfinished Put of 257 KiB
 * holds all of it in a `file://` store's writer.
 */
/**
 * The next request message of a Put, or undefined after the last: a value
 * when one is at hand (no promise per message), else a promise.
 */
export type NextChunk = () => C.BlobChunk | undefined | Promise<C.BlobChunk | undefined>;

/** A client stream's messages as a NextChunk (the grpc-js path). */
export function nextOf(msgs: AsyncIterable<C.BlobChunk>): NextChunk {
  const it = msgs[Symbol.asyncIterator]();
  return () => it.next().then((r) => (r.done ? undefined : r.value));
}

export function putBlob(store: Store, budget: ByteBudget = UNLIMITED()) {
  const heldMax = store.blobs.heldPerWriter ?? DEFAULT_HELD_PER_WRITER;
  return async (next: NextChunk, signal: AbortSignal): Promise<C.PutBlobResponse> => {
    const w = store.blobs.put();
    const held = budget.holding();
    let written = 0;
    try {
      for (;;) {
        let m = next();
        if (m instanceof Promise) m = await m;
        if (m === undefined) break;
        written += m.data.length;
        if (held.bytes < heldMax && !held.set(Math.min(written, heldMax))) throw overBudget(held);
        const accepted = w.write(m.data);
        if (accepted !== ACCEPTED) await accepted;
      }
      const digest = await w.close(signal);
      blobsWritten.inc();
      return { digest };
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    } finally {
      held.release();
    }
  };
}

export function directoryHandlers(store: Store, budget: ByteBudget = UNLIMITED()): UntypedServiceImplementation {
  return {
    Get: streaming<C.GetDirectoryRequest, C.Directory>(async (req, call) => {
      if (req.digest === undefined) return fail(status.INVALID_ARGUMENT, 'by_what needs to be specified');
      const bad = digestProblem(req.digest);
      if (bad) return bad;
      if (!req.recursive) {
        const d = await store.directories.get(req.digest);
        if (!d) return fail(status.NOT_FOUND, `directory ${b3String(req.digest)} not found`);
        await send(call, d);
        return;
      }
      for await (const d of store.directories.getRecursive(req.digest)) await send(call, d);
    }),
    // The store keeps a stream's directories until it ends (a closure is
    // checked whole), so they count against the budget until then.
    Put: clientStreamHandler<C.Directory, C.PutDirectoryResponse>(async (msgs, signal) => {
      const p = store.directories.putter();
      const held = budget.holding();
      // Stated file sizes against the blobs the store has (tvix does not check; we do), as they come.
      const sizes = fileSizeChecks(store.blobs);
      let n = 0;
      try {
        for await (const d of msgs) {
          if (!held.grow(decodedDirectoryBytes(d))) throw overBudget(held);
          await p.put(d);
          await sizes?.add(d);
          n++;
        }
        await sizes?.flush();
        const rootDigest = await p.close(signal);
        directoriesWritten.inc(n);
        return { rootDigest };
      } catch (err) {
        await p.abort().catch(() => {});
        throw err;
      } finally {
        held.release();
      }
    }),
  };
}

export function pathInfoHandlers(store: Store): UntypedServiceImplementation {
  return {
    Get: unaryHandler<S.GetPathInfoRequest, S.PathInfo | StatusObject>(async (req) => {
      if (req.byOutputHash === undefined) return fail(status.UNIMPLEMENTED, 'by_what needs to be specified');
      if (req.byOutputHash.length !== STORE_DIGEST_LEN) return fail(status.INVALID_ARGUMENT, 'invalid output digest length');
      const info = await store.pathInfos.get(req.byOutputHash);
      return info ?? fail(status.NOT_FOUND, 'PathInfo not found');
    }),
    Put: unaryHandler<S.PathInfo, S.PathInfo>(async (req, signal) => {
      // A client that goes away stops the content check (a closure of
      // tens of thousands of directories): nothing is stored then.
      const info = await store.pathInfos.put(req, signal);
      pathInfosWritten.inc();
      return info;
    }),
    // Both client generations: an anonymous root (tvix HEAD) or a named one (older).
    CalculateNAR: cancellableUnary<C.NodeMessage, S.CalculateNarResponse | StatusObject>(async ({ node }, signal) => {
      if (!node) return fail(status.INVALID_ARGUMENT, 'invalid root node: no node set');
      const problem = (node.name.length > 0 ? nameProblem(node.name) : undefined) ?? nodeContentProblem(node);
      if (problem) return fail(status.INVALID_ARGUMENT, `invalid root node: ${problem}`);
      return store.pathInfos.calculateNar(node, signal);
    }),
    List: streaming<S.GetPathInfoRequest, S.PathInfo>(async (_req, call) => {
      for await (const info of store.pathInfos.list()) await send(call, info);
    }),
  };
}
