// A Nix HTTP binary cache served straight from the store (store.md §5–7).
// The routes live beside this file: reading in http-get.ts (narinfo and
// NARs, compressed on the fly), uploads from `nix copy --to` in
// http-put.ts. Here: options, access, routing and the access log.
//
// Nothing else is served: the request target is matched as raw text
// against exactly the routes' shapes (no decoding, no normalisation, no
// file system behind it), so there is no path to traverse.
import { watchBodyStart } from './http-body-start.js';
import { storageFull, storageFullError } from './http-storage-full.js';
import * as http from 'node:http';
import type { Store } from '../store/store.js';
import { CastoreError } from '../castore/errors.js';
import type { SecretKey } from '../nix/signature.js';
import type { ServedCompression } from '../nix/compression-names.js';
import { authorizes } from './access.js';
import { HttpError, sendText, showTarget, type Exchange, type Route } from './http-exchange.js';
import { getRoutes } from './http-get.js';
import { putRoutes, refusedPutRoutes, type UploadOptions } from './http-put.js';
import { realisationRoutes } from './http-realisations.js';
import type { RealisationStore } from '../cache/realisations.js';
import { listenHttp, type HttpListenAddr } from './http-listen.js';
import { countHttpRequest, metricsAllowed, sendMetrics, trackHttpConnections } from './metrics-endpoint.js';
import { enableProcessMetrics } from '../metrics/metrics.js';

import { NarInfoSigner } from './narinfo-signer.js';
import { DEFAULT_CONNECTION_LIMITS, limitHttpConnections, type ConnectionLimits } from './connection-limits.js';
import type { ByteBudget } from '../util/byte-budget.js';

export { httpUrl, parseHttpAddr, type HttpListenAddr } from './http-listen.js';

export const DEFAULT_PRIORITY = 30;

export interface HttpCacheOptions {
  /** Signs every narinfo with this key (next to the stored signatures). */
  signingKey?: SecretKey;
  /** `Priority` in nix-cache-info (lower is preferred by Nix). */
  priority?: number;
  /** Receives one access-log line per request; default: stderr. */
  log?: (line: string) => void;
  /**
   * Every request must carry `Authorization: Bearer <token>` (or Basic auth
   * with the token as password, as Nix sends from netrc), else 401.
   */
  authToken?: string;
  /** What narinfos point at (default zstd); every form is served. */
  compression?: ServedCompression;
  /** Level of that compression (compression-names.ts LEVELS). */
  compressionLevel?: number;
  /** Accept `nix copy --to` uploads (off unless given). */
  uploads?: UploadOptions;
  /** Uploads get 403. */
  readOnly?: boolean;
  /** Where realisations of content-addressed derivations are kept and read (none: not served, uploads 404). */
  realisations?: RealisationStore;
  /** With authToken: GET and HEAD need no token (uploads still do). */
  publicReads?: boolean;
  /** GET /metrics needs the token too (else it is readable without). */
  metricsNeedToken?: boolean;
  /** Record checked signatures in the store (default true; off for a read-only daemon). */
  persistSignatures?: boolean;
  /** Connection limits and timeouts (connection-limits.ts). */
  limits?: ConnectionLimits;
  /** The daemon's budget of bytes held for clients (request-budget.ts); none: unbounded. */
  budget?: ByteBudget;
  /** Holds each request's handler until it has finished and been logged (close waits for them). */
  inFlight?: Set<Promise<void>>;
}

/** The metrics' route label of a request path. */
function routeLabel(path: string): string {
  if (path === '/nix-cache-info') return 'nix-cache-info';
  if (path.endsWith('.narinfo')) return 'narinfo';
  if (path.startsWith('/nar/')) return 'nar';
  if (path.endsWith('.ls')) return 'ls';
  if (path.startsWith('/log/')) return 'log';
  if (path.startsWith('/realisations/')) return 'realisation';
  return 'other';
}

export function createHttpCacheHandler(store: Store, opts: HttpCacheOptions = {}): http.RequestListener {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const routes: Route[] = [
    ...getRoutes(store, { signer: opts.signingKey && new NarInfoSigner(store, opts.signingKey, { persist: opts.persistSignatures ?? true, log }), priority: opts.priority ?? DEFAULT_PRIORITY, compression: opts.compression ?? 'zstd', compressionLevel: opts.compressionLevel, aliasOf: opts.uploads && ((f) => opts.uploads!.staging.getAlias(f)) }),
    ...(opts.realisations ? realisationRoutes(store, { realisations: opts.realisations, trustedKeys: opts.uploads?.trustedKeys }) : []),
    ...(opts.uploads ? putRoutes(store, opts.uploads) : opts.readOnly ? refusedPutRoutes() : []),
  ];

  async function serveMetrics(x: Exchange): Promise<void> {
    x.route = 'metrics';
    if (!metricsAllowed(x.req, { authToken: opts.authToken, tokenRequired: opts.metricsNeedToken })) {
      x.res.setHeader('WWW-Authenticate', 'Bearer realm="nix-castore", Basic realm="nix-castore"');
      throw new HttpError(401, 'the metrics need an Authorization: Bearer <token> header');
    }
    if (x.req.method !== 'GET' && x.req.method !== 'HEAD') {
      x.res.setHeader('Allow', 'GET, HEAD');
      throw new HttpError(405, `method ${x.req.method} is not allowed on /metrics`);
    }
    x.bytes += await sendMetrics(x.res, x.head);
  }

  async function route(x: Exchange): Promise<void> {
    const target = x.req.url ?? '';
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    if (path === '/metrics') return serveMetrics(x);
    x.route = routeLabel(path);
    const reading = x.req.method === 'GET' || x.req.method === 'HEAD';
    if (opts.authToken !== undefined && !(opts.publicReads && reading) && !authorizes(x.req.headers.authorization, opts.authToken, true)) {
      x.res.setHeader('WWW-Authenticate', 'Bearer realm="nix-castore", Basic realm="nix-castore"');
      throw new HttpError(401, 'this cache needs an Authorization: Bearer <token> header');
    }
    const method = x.req.method ?? '';
    const matching = routes.map((r) => ({ r, m: r.path.exec(path) })).filter((c) => c.m !== null);
    const chosen = matching.find((c) => c.r.methods.includes(method));
    if (!chosen) {
      // Reads of what is only ever written (listings, logs) are absent, as Nix expects.
      if ((matching.length === 0 || method === 'GET' || method === 'HEAD') && (method === 'GET' || method === 'HEAD' || (opts.uploads && method === 'PUT'))) {
        throw new HttpError(404, 'not found');
      }
      const allowed = [...new Set((matching.length ? matching.map((c) => c.r) : routes).flatMap((r) => r.methods))];
      x.res.setHeader('Allow', allowed.join(', '));
      throw new HttpError(405, `method ${method} is not allowed here; this takes ${allowed.join(', ')}`);
    }
    if (chosen.r.writes) {
      if (opts.readOnly) throw new HttpError(403, 'the daemon is read-only: it takes no uploads');
      if (opts.signingKey && opts.authToken === undefined) {
        throw new HttpError(403, 'this daemon signs what it serves, so it takes uploads only with --auth-token-file');
      }
      if (x.stallMs !== undefined) watchBodyStart(x, x.stallMs);
    }
    return chosen.r.handle(x, chosen.m!);
  }

  return (req, res) => {
    const start = process.hrtime.bigint();
    const x: Exchange = { req, res, head: req.method === 'HEAD', bytes: 0, route: 'other', writeBufferBytes: opts.limits?.httpWriteBufferBytes, stallMs: opts.limits?.streamStallMs, budget: opts.budget };
    // The log line waits for the handler too: an upload cut short is still
    // being cleaned up when its connection closes.
    let handled!: () => void;
    const done = new Promise<void>((r) => (handled = r));
    let logged!: () => void;
    const finished = new Promise<void>((r) => (logged = r));
    opts.inFlight?.add(finished);
    void finished.then(() => opts.inFlight?.delete(finished));
    res.on('close', () => {
      void done.then(() => {
        logged();
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        countHttpRequest(x.route, res.statusCode, ms / 1e3);
        const aborted = !res.writableFinished && !x.note ? ' (connection closed early)' : '';
        log(
          `nix-castore http: ${req.method} ${showTarget(req.url ?? '')} ${res.statusCode} ${x.bytes} ${ms.toFixed(1)}ms` +
            (x.note ? ` (${x.note})` : aborted),
        );
      });
    });
    route(x)
      .catch((err: unknown) => {
        let status = 500;
        let message = err instanceof Error ? err.message : String(err);
        if (err instanceof HttpError) status = err.status;
        else if (err instanceof CastoreError && err.kind === 'unavailable') status = 503;
        else if (storageFull(err)) ({ status, message } = storageFullError(err));
        else message = `internal error: ${message}`;
        if (status >= 500) x.note = message;
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (res.destroyed) {
          // Nobody to answer: the log says what the answer would have been.
          res.statusCode = status;
          x.note ??= message;
          return;
        }
        sendText(x, status, 'text/plain; charset=utf-8', `${message}\n`);
      })
      .finally(handled);
  };

}

export interface RunningHttpCache {
  server: http.Server;
  /** `http://host:port` as bound (the real port when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

/** How long a close waits for the handlers of the requests it cut. */
const CLOSE_GRACE_MS = 5000;

async function settle(inFlight: Set<Promise<void>>, graceMs: number, log: (line: string) => void): Promise<void> {
  if (inFlight.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)));
  const done = Promise.all(inFlight).then(() => false);
  if (await Promise.race([done, late])) log(`nix-castore http: closing with ${inFlight.size} request(s) still being handled after ${graceMs / 1000} s`);
  clearTimeout(timer);
}

export async function startHttpCache(store: Store, addr: HttpListenAddr, opts: HttpCacheOptions = {}): Promise<RunningHttpCache> {
  const inFlight = new Set<Promise<void>>();
  const server = http.createServer({ keepAliveTimeout: 30_000 }, createHttpCacheHandler(store, { ...opts, inFlight }));
  enableProcessMetrics();
  trackHttpConnections(server);
  limitHttpConnections(server, opts.limits ?? DEFAULT_CONNECTION_LIMITS);
  const listening = await listenHttp(server, addr, 'HTTP');
  let closed: Promise<void> | undefined;
  return {
    server,
    url: listening.url,
    close() {
      // Requests cut short by the close finish their clean-up (and log
      // their line) before the staging, the realisations and then the
      // store are closed; a handler still busy after the grace is named
      // and left behind.
      closed ??= listening
        .close()
        .then(() => settle(inFlight, CLOSE_GRACE_MS, opts.log ?? ((line) => process.stderr.write(line + '\n'))))
        .then(async () => {
          await opts.uploads?.staging.close?.();
          await opts.realisations?.close?.();
        });
      return closed;
    },
  };
}
