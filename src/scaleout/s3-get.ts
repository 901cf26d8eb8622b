// Ranged GETs of S3 objects without the AWS SDK: a SigV4-signed request
// (s3-sigv4.ts) over a keep-alive agent, the body handed on as the socket
// delivers it. The SDK still does every other request; its client supplies
// the credentials (its default chain, refreshed when they expire) so both
// paths use the same ones. Errors come back shaped like the SDK's service
// errors (name, $fault, $metadata), so one mapping (s3-objects.ts) serves both.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { encodeKeyPath, signGet, type S3Credentials } from './s3-sigv4.js';

/** Sockets to S3 at most (the SDK's default too); further GETs queue in the agent. */
export const MAX_SOCKETS = 50;
/** Attempts per GET, as the SDK's standard retry mode makes. */
const MAX_ATTEMPTS = 3;
/**
 * How long S3 may send nothing, before the answer's headers or in the
 * middle of its body, before the GET fails (default; `timeout=` in the
 * store address). A body is timed only while every byte that arrived has
 * been taken: a reader that is slow itself is never cut off.
 */
export const DEFAULT_STALL_MS = 60_000;
/** An error answer's body read at most (it is XML of a few hundred bytes). */
const ERROR_BODY_MAX = 16 << 10;
const RETRIED_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);
/** Refusals that may come from a wrong local clock (the SDK's list); retried once the clock is corrected. */
const SKEW_CODES = new Set(['RequestTimeTooSkewed', 'RequestExpired', 'RequestInTheFuture', 'SignatureDoesNotMatch', 'AuthFailure', 'InvalidSignatureException']);
/** Clock differences the server tolerates (S3: 15 minutes); beyond this one, its Date header is believed. */
const SKEW_MS = 5 * 60_000;

export interface S3Target {
  bucket: string;
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
}

/** An S3 error answer, shaped like the SDK's S3ServiceException. */
export class S3ServiceError extends Error {
  readonly $fault: 'client' | 'server';
  readonly $metadata: { httpStatusCode: number };
  constructor(
    name: string,
    message: string,
    status: number,
    /** The answer's Date header (ms since the epoch), if any. */
    readonly serverDate?: number,
  ) {
    super(message);
    this.name = name;
    this.$fault = status >= 500 ? 'server' : 'client';
    this.$metadata = { httpStatusCode: status };
  }
}

export class S3Getter {
  private readonly agent: http.Agent;
  private readonly secure: boolean;
  private readonly hostname: string;
  private readonly port: number;
  private readonly host: string;
  private readonly pathBase: string;
  /** Server time minus local time, learnt from a refusal for a wrong clock (as the SDK does). */
  clockOffsetMs = 0;
  /** Called for each attempt sent (request counting). */
  onAttempt = (): void => {};

  constructor(
    readonly target: S3Target,
    private readonly credentials: () => Promise<S3Credentials>,
    private readonly stallMs = DEFAULT_STALL_MS,
  ) {
    const base = new URL(target.endpoint ?? `https://s3.${target.region}.amazonaws.com`);
    this.secure = base.protocol === 'https:';
    // Buckets with dots break TLS host names; the SDK too falls back to path style for them.
    const pathStyle = target.forcePathStyle || !/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(target.bucket);
    this.hostname = pathStyle ? base.hostname : `${target.bucket}.${base.hostname}`;
    this.port = base.port ? Number(base.port) : this.secure ? 443 : 80;
    this.host = base.port ? `${this.hostname}:${base.port}` : this.hostname;
    const prefix = base.pathname.replace(/\/+$/, '');
    this.pathBase = pathStyle ? `${prefix}/${encodeKeyPath(target.bucket)}/` : `${prefix}/`;
    const opts = { keepAlive: true, maxSockets: MAX_SOCKETS, maxFreeSockets: MAX_SOCKETS };
    this.agent = this.secure ? new https.Agent(opts) : new http.Agent(opts);
  }

  /**
   * The response to a GET of bytes [offset, offset+length) of `key` (206,
   * or 200 when that is the whole object), retried like the SDK retries:
   * network errors, 5xx and throttling, before any body byte is handed on.
   */
  async get(key: string, offset: number, length: number, signal?: AbortSignal): Promise<IncomingMessage> {
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await this.attempt(key, offset, length, signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (attempt >= MAX_ATTEMPTS) throw err;
        if (err instanceof S3ServiceError && err.serverDate !== undefined && SKEW_CODES.has(err.name)) {
          const offset = err.serverDate - Date.now();
          if (Math.abs(offset - this.clockOffsetMs) <= SKEW_MS) throw err;
          this.clockOffsetMs = offset;
          continue; // at once, with the corrected clock
        }
        if (!retried(err)) throw err;
      }
      // Full jitter on an exponential base, as the SDK's standard strategy.
      await sleep(Math.random() * Math.min(20_000, 100 * 2 ** attempt), signal);
    }
  }

  private async attempt(key: string, offset: number, length: number, signal?: AbortSignal): Promise<IncomingMessage> {
    const path = this.pathBase + encodeKeyPath(key);
    const range = `bytes=${offset}-${offset + length - 1}`;
    const headers = signGet({ host: this.host, path, range, region: this.target.region, credentials: await this.credentials(), now: new Date(Date.now() + this.clockOffsetMs) });
    this.onAttempt();
    const stalled = (what: string) => Object.assign(new Error(`S3 sent nothing for ${this.stallMs / 1000} s ${what}`), { code: 'ETIMEDOUT' });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (this.secure ? https : http).request({ agent: this.agent, hostname: this.hostname, port: this.port, path, method: 'GET', headers, signal }, resolve);
      const noHeaders = () => req.destroy(stalled('in answer to a GET'));
      req.setTimeout(this.stallMs, noHeaders);
      req.once('response', (r: IncomingMessage) => {
        req.off('timeout', noHeaders);
        // The body's silence is timed by the socket's idle timer (re-armed by every byte; reset when the agent takes the socket back).
        const sock = r.socket;
        const silent = () => {
          if (r.readableLength > 0) return void sock.setTimeout(this.stallMs); // bytes wait for a slow reader: not S3's silence
          r.destroy(stalled('in the middle of its answer'));
        };
        sock.on('timeout', silent);
        r.once('close', () => sock.off('timeout', silent));
      });
      req.once('error', reject);
      req.end();
    });
    const status = res.statusCode ?? 0;
    if (status === 206 || (status === 200 && offset === 0)) {
      const size = Number(res.headers['content-length']);
      if (Number.isSafeInteger(size) && size > length) {
        res.destroy();
        throw new S3ServiceError('InvalidResponse', `S3 answered ${size} bytes to a GET of ${length}`, status);
      }
      return res;
    }
    throw await errorOf(res, status);
  }

  close(): void {
    this.agent.destroy();
  }
}

/** The SDK-shaped error of a non-2xx answer, from the XML body's Code and Message (HEAD-like bodies have none). */
async function errorOf(res: IncomingMessage, status: number): Promise<S3ServiceError> {
  let text = '';
  try {
    for await (const chunk of res) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length > ERROR_BODY_MAX) break;
    }
  } catch {
    // the status alone will do
  } finally {
    res.destroy();
  }
  const tag = (t: string) => new RegExp(`<${t}>([^<]*)</${t}>`).exec(text)?.[1];
  const code = tag('Code') ?? (status === 404 ? 'NotFound' : status === 403 ? 'Forbidden' : `Http${status}`);
  const date = Date.parse(res.headers.date ?? '');
  return new S3ServiceError(code, tag('Message') ?? `HTTP ${status}`, status, Number.isNaN(date) ? undefined : date);
}

function retried(err: unknown): boolean {
  if (err instanceof S3ServiceError) {
    const s = err.$metadata.httpStatusCode;
    return s >= 500 || s === 429 || err.name === 'SlowDown' || err.name === 'RequestTimeout';
  }
  return RETRIED_CODES.has((err as NodeJS.ErrnoException).code ?? '');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', stop);
      resolve();
    }
    function stop() {
      clearTimeout(t);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', stop, { once: true });
  });
}
