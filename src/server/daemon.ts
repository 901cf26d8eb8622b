// The bundled daemon: the tvix services (also under snix.*), reflection and
// health over one store, on any number of TCP and unix-socket listeners.
import * as grpc from '@grpc/grpc-js';
import { chmod, unlink } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import type { Store } from '../store/store.js';
import { adminServiceDef, blobDeltaServiceDef, blobFromPathServiceDef, blobServiceDef, storeStatsServiceDef, directoryServiceDef, pathInfoServiceDef, PACKAGES } from '../grpc/definitions.js';
import { blobHandlers, directoryHandlers, pathInfoHandlers } from './handlers.js';
import { blobBatchHandlers, blobBatchServiceForServer } from './batch-handlers.js';
import { blobDeltaHandlers } from './delta-handlers.js';
import { fromPathDeclined } from './from-path.js';
import type { DeltaStore } from '../castore/delta/delta-store.js';
import { adminHandlers } from './admin-handlers.js';
import type { GcAdmin } from '../gc/admin.js';
import { addReflectionServices } from './reflection.js';
import { addHealthService } from './health.js';
import { bindFailure } from './bind-errors.js';
import { quietGrpcBindLog } from './grpc-log.js';
import { bindTarget, clearStaleSocket, clientAddr, showListenAddr, type ListenAddr } from './listen.js';
import { startHttpCache, type HttpCacheOptions, type HttpListenAddr, type RunningHttpCache } from './http-cache.js';
import { tolerantDecoding } from './decode.js';
import { guardWrite, WRITE_METHODS, type AccessPolicy } from './access.js';
import { leanBlobRoute, type LeanRoute } from './lean-blob.js';
import { observeGrpc } from './grpc-metrics.js';
import { storeStatsHandlers } from './store-stats-service.js';
import { handOverGuarded } from './framing-guard.js';
import { DEFAULT_CONNECTION_LIMITS, limitHttp2Connections, type ConnectionLimits } from './connection-limits.js';
import { resetStalledStreams } from './stream-stall.js';
import { requestBudget } from './request-budget.js';
import type { ByteBudget } from '../util/byte-budget.js';

export const PROTO_DIR = fileURLToPath(new URL('../../../protos', import.meta.url));
export const PROTO_FILES = PACKAGES.flatMap((p) => [
  `${p}/castore/protos/castore.proto`,
  `${p}/castore/protos/rpc_blobstore.proto`,
  `${p}/castore/protos/rpc_directory.proto`,
  `${p}/store/protos/pathinfo.proto`,
  `${p}/store/protos/rpc_pathinfo.proto`,
]).concat('nixcastore/v1/blob_batch.proto', 'nixcastore/v1/blob_delta.proto', 'nixcastore/v1/blob_from_path.proto', 'nixcastore/v1/stats.proto', 'nixcastore/v1/admin.proto', 'grpc/health/v1/health.proto');

export interface DaemonOptions {
  listen: ListenAddr[];
  /** Largest message accepted, in bytes (4 MiB like tonic). */
  maxMessageBytes?: number;
  /** Mode of created unix sockets. */
  socketMode?: number;
  /** Also serve the store as a Nix HTTP binary cache here. */
  http?: HttpListenAddr & HttpCacheOptions;
  /** Read-only mode and the bearer token writes need (access.ts). */
  access?: AccessPolicy;
  /** Pins and garbage collection for nixcastore.v1.AdminService (undefined: the store has none). */
  admin?: GcAdmin;
  log?: (msg: string) => void;
  /** Delta uploads (nixcastore.v1.BlobDeltaService) over the store's blobs; undefined: not offered. */
  deltas?: DeltaStore;
  /** Directories below which nixcastore.v1.BlobFromPathService reads local clients' files (resolved); empty or absent: not offered. */
  fromPathRoots?: string[];
  /** Max connections, handshake and idle timeouts, for gRPC and HTTP alike. */
  limits?: ConnectionLimits;
}

export interface RunningDaemon {
  server: grpc.Server;
  /** One `grpc+…` client address per listener, in order. */
  addrs: string[];
  /** `http://host:port` of the Nix binary cache, when serving one. */
  httpUrl?: string;
  stop(graceMs?: number): Promise<void>;
}

const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** What createServer's streams may hold: concurrent streams per connection, and the budget of buffered request bytes. */
export interface ServerBounds {
  maxStreams: number;
  budget: ByteBudget;
}

export function createServer(store: Store, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES, access: AccessPolicy = {}, admin?: GcAdmin, log: (msg: string) => void = () => {}, bounds: ServerBounds = { maxStreams: DEFAULT_CONNECTION_LIMITS.maxStreams, budget: requestBudget(DEFAULT_CONNECTION_LIMITS.maxBufferedBytes) }, deltas?: DeltaStore, fromPath = false): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': -1,
    // Copy clients run many blob streams at once over one connection.
    'grpc.max_concurrent_streams': bounds.maxStreams,
  });
  const { budget } = bounds;
  for (const pkg of PACKAGES) {
    server.addService(tolerantDecoding(blobServiceDef(pkg)), guardWrite(blobHandlers(store, budget), WRITE_METHODS.blob, access));
    server.addService(tolerantDecoding(directoryServiceDef(pkg)), guardWrite(directoryHandlers(store, budget), WRITE_METHODS.directory, access));
    server.addService(tolerantDecoding(pathInfoServiceDef(pkg)), guardWrite(pathInfoHandlers(store), WRITE_METHODS.pathInfo, access));
  }
  server.addService(blobBatchServiceForServer(), guardWrite(blobBatchHandlers(store, maxMessageBytes), 'Put', access));
  if (deltas) server.addService(tolerantDecoding(blobDeltaServiceDef()), ['FindBase', 'Put'].reduce((impl, m) => guardWrite(impl, m, access), blobDeltaHandlers(deltas, budget)));
  // Served on the plain node:http2 path (lean-blob.ts), which knows the client's socket; grpc-js gets the calls it
  // does not speak (a deadline, compression) and declines them, and registering it names the method in the metrics.
  if (fromPath) server.addService(tolerantDecoding(blobFromPathServiceDef()), guardWrite(fromPathDeclined(), 'Put', access));
  server.addService(storeStatsServiceDef(), storeStatsHandlers(store));
  // Every admin method is a write (admin-handlers.ts).
  const adminDef = adminServiceDef();
  server.addService(tolerantDecoding(adminDef), Object.keys(adminDef).reduce((impl, m) => guardWrite(impl, m, access), adminHandlers(admin, log)));
  widenStreamSettings(server);
  addReflectionServices(server, { includeDir: PROTO_DIR, files: PROTO_FILES });
  addHealthService(server);
  return server;
}

// HTTP/2 settings. Flow control: Node's default 64 KiB windows make a blob upload
// wait for a WINDOW_UPDATE every 64 KiB, which caps it at ~0.3 GB/s over a
// unix socket; 4 MiB per stream and 32 MiB per connection let it run at
// transport speed while bounding what one client can make us buffer.
// grpc-js has no server option for either, hence the access to its
// internals; if they change, we only lose speed.
const STREAM_WINDOW = 4 * 1024 * 1024;
const CONNECTION_WINDOW = 32 * 1024 * 1024;
// Clients may send DATA frames of up to 1 MiB instead of 16 KiB: a blob's
// bytes then arrive in a fraction of the reads and 'data' events (about
// 3% off a copy into the daemon in interleaved runs).
export const MAX_FRAME_BYTES = 1024 * 1024;

type ServerInternals = {
  commonServerOptions?: { settings?: Record<string, unknown> };
  http2Servers?: Map<import('node:http2').Http2Server, unknown>;
};

function widenStreamSettings(server: grpc.Server): void {
  const common = (server as unknown as ServerInternals).commonServerOptions;
  if (common) common.settings = { ...common.settings, initialWindowSize: STREAM_WINDOW, maxFrameSize: MAX_FRAME_BYTES };
}

function widenConnectionWindow(server: grpc.Server): void {
  for (const h of (server as unknown as ServerInternals).http2Servers?.keys() ?? []) {
    h.on('session', (session) => session.once('localSettings', () => session.setLocalWindowSize(CONNECTION_WINDOW)));
  }
}

type StreamListener = (stream: import('node:http2').ServerHttp2Stream, headers: import('node:http2').IncomingHttpHeaders, ...rest: unknown[]) => void;

/** Streams `route` takes are served by it; the rest go to grpc-js's own listeners, as before. */
function routeLean(server: grpc.Server, route: LeanRoute, budget: ByteBudget): void {
  for (const h of (server as unknown as ServerInternals).http2Servers?.keys() ?? []) {
    const grpcListeners = h.listeners('stream') as StreamListener[];
    h.removeAllListeners('stream');
    h.on('stream', (stream, headers, ...rest: unknown[]) => {
      if (route(stream, headers)) return;
      handOverGuarded(
        stream,
        headers,
        () => {
          for (const l of grpcListeners) l.call(h, stream, headers, ...rest);
        },
        budget.holding(),
      );
    });
  }
}

export async function startDaemon(store: Store, opts: DaemonOptions): Promise<RunningDaemon> {
  quietGrpcBindLog();
  const limits = opts.limits ?? DEFAULT_CONNECTION_LIMITS;
  const budget = requestBudget(limits.maxBufferedBytes);
  const server = createServer(store, opts.maxMessageBytes, opts.access, opts.admin, opts.log, { maxStreams: limits.maxStreams, budget }, opts.deltas, (opts.fromPathRoots?.length ?? 0) > 0 && !opts.access?.readOnly);
  let stopWatch: (() => void) | undefined;
  const addrs: string[] = [];
  const sockets: string[] = [];
  let httpCache: RunningHttpCache | undefined;
  try {
    for (const l of opts.listen) {
      if (l.kind === 'unix') await clearStaleSocket(l.path);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(bindTarget(l), grpc.ServerCredentials.createInsecure(), (err, p) =>
          err ? reject(new Error(`cannot listen on ${showListenAddr(l)}: ${bindFailure(err.message)}`)) : resolve(p),
        ),
      );
      if (l.kind === 'unix') {
        sockets.push(l.path);
        await chmod(l.path, opts.socketMode ?? 0o660);
      }
      addrs.push(clientAddr(l, port));
    }
    widenConnectionWindow(server);
    const h2 = [...((server as unknown as ServerInternals).http2Servers?.keys() ?? [])];
    limitHttp2Connections(h2, limits);
    routeLean(server, leanBlobRoute(store, opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, opts.access ?? {}, budget, opts.fromPathRoots), budget);
    stopWatch = resetStalledStreams(h2, limits.streamStallMs); // after routeLean, which takes over the 'stream' listeners there are
    observeGrpc(server);
    if (opts.http) httpCache = await startHttpCache(store, opts.http, { ...opts.http, limits, budget });
  } catch (err) {
    stopWatch?.();
    server.forceShutdown();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    server,
    addrs,
    httpUrl: httpCache?.url,
    stop(graceMs = 5000) {
      stopped ??= (async () => {
        stopWatch?.();
        await httpCache?.close();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        for (const s of sockets) await unlink(s).catch(() => {});
      })();
      return stopped;
    },
  };
}

