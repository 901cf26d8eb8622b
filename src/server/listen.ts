// Listen addresses: `host:port`, `[v6]:port`, or `unix:/abs/path`.
import { connect } from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import { invalid } from '../castore/errors.js';

export type ListenAddr = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export const DEFAULT_LISTEN = '[::1]:8000';

export function parseListenAddr(s: string): ListenAddr {
  if (s.startsWith('unix:')) {
    const path = s.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path.startsWith('/')) throw invalid(`listen address ${s}: unix socket path must be absolute (unix:/abs/path)`);
    return { kind: 'unix', path };
  }
  if (s.startsWith('/')) return { kind: 'unix', path: s };
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d+)$/.exec(s);
  if (!m) throw invalid(`listen address ${JSON.stringify(s)}: expected host:port, [v6]:port or unix:/abs/path`);
  const port = Number(m[2]);
  if (port > 65535) throw invalid(`listen address ${s}: port out of range`);
  return { kind: 'tcp', host: m[1], port };
}

/** grpc-js bind target. */
export function bindTarget(a: ListenAddr): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `${a.host}:${a.port}`;
}

export function showListenAddr(a: ListenAddr): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `${a.host}:${a.port}`;
}

/** The client address (`grpc+…`) that reaches a listen address. */
export function clientAddr(a: ListenAddr, boundPort?: number): string {
  return a.kind === 'unix' ? `grpc+unix://${a.path}` : `grpc+http://${a.host}:${boundPort ?? a.port}`;
}

/**
 * Removes a socket file left by a daemon that is gone; refuses to take over
 * one that still answers.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  try {
    if (!(await lstat(path)).isSocket()) throw invalid(`${path} exists and is not a socket; refusing to replace it`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
  if (alive) throw invalid(`another process is already listening on ${path}`);
  await unlink(path);
}
