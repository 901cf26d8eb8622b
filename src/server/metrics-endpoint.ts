// GET /metrics: the Prometheus text exposition, on the binary-cache
// listener (http-cache.ts routes it here) or on a listener of its own
// (`--metrics ADDR`, for a daemon without --http and for `drain --watch`).
import * as http from 'node:http';
import { enableProcessMetrics, exposition, httpDuration, httpRequests, trackSocket } from '../metrics/metrics.js';
import { authorizes } from './access.js';
import { listenHttp, type HttpListenAddr } from './http-listen.js';

export interface MetricsAccess {
  /** With `tokenRequired`, /metrics needs this bearer token (or Basic auth with it as password). */
  authToken?: string;
  /** Put /metrics behind the token too (it is readable without by default). */
  tokenRequired?: boolean;
}

/** Whether a request for /metrics may read them. */
export function metricsAllowed(req: http.IncomingMessage, access: MetricsAccess): boolean {
  return !access.tokenRequired || access.authToken === undefined || authorizes(req.headers.authorization, access.authToken, true);
}

/** Answers a GET or HEAD of /metrics (access already checked). */
export async function sendMetrics(res: http.ServerResponse, head: boolean): Promise<number> {
  const { contentType, text } = await exposition();
  const body = Buffer.from(text, 'utf8');
  res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
  res.end(head ? undefined : body);
  return head ? 0 : body.length;
}

/** Counts one answered HTTP request (the binary cache and this endpoint). */
export function countHttpRequest(route: string, status: number, seconds: number): void {
  httpRequests.inc({ route, status: String(status) });
  httpDuration.observe({ route }, seconds);
}

/** Counts the bytes of every connection `server` accepts. */
export function trackHttpConnections(server: http.Server): void {
  server.on('connection', (socket) => trackSocket(socket, 'http'));
}

export interface RunningMetricsServer {
  url: string;
  close(): Promise<void>;
}

/** A listener serving only /metrics (anything else: 404; methods other than GET and HEAD: 405). */
export async function startMetricsServer(addr: HttpListenAddr, access: MetricsAccess = {}): Promise<RunningMetricsServer> {
  enableProcessMetrics();
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const start = process.hrtime.bigint();
    const path = (req.url ?? '').split('?')[0];
    const route = path === '/metrics' ? 'metrics' : 'other';
    res.on('close', () => countHttpRequest(route, res.statusCode, Number(process.hrtime.bigint() - start) / 1e9));
    const fail = (status: number, text: string, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(`${text}\n`);
    };
    if (route !== 'metrics') return fail(404, 'not found; the metrics are at /metrics');
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'only GET and HEAD', { Allow: 'GET, HEAD' });
    if (!metricsAllowed(req, access)) {
      return fail(401, 'the metrics need an Authorization: Bearer <token> header', { 'WWW-Authenticate': 'Bearer realm="nix-castore"' });
    }
    sendMetrics(res, req.method === 'HEAD').catch((err: Error) => {
      if (res.headersSent) res.destroy();
      else fail(500, `collecting the metrics failed: ${err.message}`);
    });
  });
  trackHttpConnections(server);
  return listenHttp(server, addr, 'metrics');
}
