// Addresses of the HTTP listeners (the binary cache, --metrics).
import { bindFailure } from './bind-errors.js';
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpListenAddr {
  host: string;
  port: number;
}

/**
 * `host:port`, `[v6]:port`, or just `port` / `:port` (then the loopback
 * address 127.0.0.1). Port 0 picks a free port.
 */
export function parseHttpAddr(s: string): HttpListenAddr {
  const bare = /^:?(\d+)$/.exec(s);
  const m = bare ? null : /^(\[[0-9a-fA-F:.]+\]|[^:[\]/]+):(\d+)$/.exec(s);
  if (!bare && !m) throw new Error(`HTTP address ${JSON.stringify(s)}: expected host:port, [v6]:port or a port number`);
  const port = Number(bare ? bare[1] : m![2]);
  if (!Number.isSafeInteger(port) || port > 65535) throw new Error(`HTTP address ${JSON.stringify(s)}: port out of range`);
  const host = bare ? '127.0.0.1' : m![1].replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

/** `http://host:port` for a bound server (IPv6 hosts in brackets). */
export function httpUrl(addr: AddressInfo | HttpListenAddr): string {
  const host = 'address' in addr ? addr.address : addr.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
}

/** A listening HTTP server: its URL and a close that also ends kept-alive connections (idempotent). */
export interface ListeningHttp {
  url: string;
  close(): Promise<void>;
}

/** Listens on `addr`; `what` names the listener in the error a taken port gives. */
export async function listenHttp(server: http.Server, addr: HttpListenAddr, what: string): Promise<ListeningHttp> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`cannot serve ${what} on ${httpUrl(addr)}: ${bindFailure(err.message)}`));
    server.once('error', onError);
    server.listen({ host: addr.host, port: addr.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  let closed: Promise<void> | undefined;
  return {
    url: httpUrl(server.address() as AddressInfo),
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
