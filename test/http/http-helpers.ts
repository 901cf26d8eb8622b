// Raw HTTP requests for the binary-cache tests: the request target is sent
// exactly as given (no URL normalisation), so traversal attempts reach the
// server as written.
import * as http from 'node:http';
import type { DaemonProcess } from '../helpers/daemon.js';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function request(baseUrl: string, target: string, method = 'GET', headers: http.OutgoingHttpHeaders = {}, body?: Uint8Array): Promise<RawResponse> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port), path: target, method, agent: false, headers },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Waits for the daemon's start-up line and returns the binary cache URL from it. */
export async function cacheUrlOf(d: DaemonProcess, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = /Nix binary cache on (http:\/\/\S+)/.exec(d.stderr());
    if (m) return m[1];
    if (Date.now() > deadline) throw new Error(`no binary cache URL in the daemon's output:\n${d.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
