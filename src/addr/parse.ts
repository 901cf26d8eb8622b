// Store addresses (addresses.md §1, plus our on-disk store):
//   memory://                 in-process maps (no host, no path)
//   file:///abs/dir           the embedded on-disk store (see castore/disk/disk-layout.ts)
//   grpc+unix:///abs/socket   a daemon on a unix socket
//   grpc+http://host:port     a daemon over h2c (grpc+https:// with TLS)
//   s3://bucket/prefix?index=postgres://…   blobs in S3, index in PostgreSQL
//   postgres://…              directories / PathInfos in PostgreSQL
// (the scale-out ones are described in ../scaleout/addr.ts). open.ts turns
// them into services: the only place that knows every backend.
import { resolve } from 'node:path';
import { invalid } from '../castore/errors.js';
import { isPostgresAddr, parseS3Addr } from '../scaleout/addr.js';

export type Addr =
  | { kind: 'memory' }
  | { kind: 'file'; root: string }
  | { kind: 'grpc'; addr: string }
  | { kind: 's3'; addr: string; indexUrl: string }
  | { kind: 'postgres'; url: string };

export const ADDR_HELP =
  'memory://, file:///abs/dir, grpc+unix:///abs/socket, grpc+http://host:port, grpc+https://host:port, s3://bucket/prefix?index=postgres://… or postgres://…';

export function parseAddr(addr: string): Addr {
  let u: URL;
  try {
    u = new URL(addr);
  } catch {
    throw invalid(`invalid store address ${JSON.stringify(addr)}; expected ${ADDR_HELP}`);
  }
  if (u.protocol === 'memory:') {
    if (u.host || u.pathname) throw invalid(`${addr}: memory:// takes no host and no path`);
    return { kind: 'memory' };
  }
  if (u.protocol === 'file:') {
    if (u.host) throw invalid(`${addr}: file:// takes no host; write file:///absolute/path`);
    if (!u.pathname || u.pathname === '/') throw invalid(`${addr}: needs a directory path other than /`);
    return { kind: 'file', root: resolve(decodeURIComponent(u.pathname)) };
  }
  if (u.protocol.startsWith('grpc+')) return { kind: 'grpc', addr };
  if (u.protocol === 's3:') return { kind: 's3', addr, indexUrl: parseS3Addr(addr).indexUrl };
  if (isPostgresAddr(addr)) return { kind: 'postgres', url: addr };
  throw invalid(`unsupported store address ${JSON.stringify(addr)}; expected ${ADDR_HELP}`);
}

export function fileAddr(dir: string): string {
  return 'file://' + encodeURI(resolve(dir));
}
