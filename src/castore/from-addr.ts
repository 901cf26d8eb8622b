// Service addresses → backends (addresses.md §1, plus our on-disk store):
//   memory://                 in-process maps (no host, no path)
//   file:///abs/dir           the embedded on-disk store (see disk/disk-layout.ts)
//   grpc+unix:///abs/socket   a daemon on a unix socket
//   grpc+http://host:port     a daemon over h2c (grpc+https:// with TLS)
//   s3://bucket/prefix?index=postgres://…   blobs in S3, index in PostgreSQL
//   postgres://…              directories / PathInfos in PostgreSQL
// (the scale-out ones are described in ../scaleout/addr.ts)
import { resolve } from 'node:path';
import type { BlobService } from './blob-service.js';
import type { DirectoryService } from './directory-service.js';
import { MemoryBlobService } from './memory/memory-blob-service.js';
import { MemoryDirectoryService } from './memory/memory-directory-service.js';
import { DiskBlobService } from './disk/disk-blob-service.js';
import { DiskDirectoryService } from './disk/disk-directory-service.js';
import { DiskLayout } from './disk/disk-layout.js';
import { GrpcBlobService } from './grpc/grpc-blob-service.js';
import { GrpcDirectoryService } from './grpc/grpc-directory-service.js';
import { invalid } from './errors.js';
import { isPostgresAddr, parseS3Addr } from '../scaleout/addr.js';
import { S3BlobService } from '../scaleout/s3-blob-service.js';
import { PgDirectoryService } from '../scaleout/pg-directory-service.js';

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

// All services of one process opened on the same directory share a layout.
const layouts = new Map<string, DiskLayout>();
export function diskLayout(root: string): DiskLayout {
  let l = layouts.get(root);
  if (!l) layouts.set(root, (l = new DiskLayout(root)));
  return l;
}

export function blobServiceFromAddr(addr: string): BlobService {
  const a = parseAddr(addr);
  if (a.kind === 'memory') return new MemoryBlobService();
  if (a.kind === 'file') return new DiskBlobService(diskLayout(a.root));
  if (a.kind === 's3') return new S3BlobService(a.addr);
  if (a.kind === 'postgres') {
    throw invalid(`${addr}: blob bytes do not go to PostgreSQL; give s3://bucket/prefix?index=${addr} (bytes in S3, their index in PostgreSQL)`);
  }
  return new GrpcBlobService(a.addr);
}

export function directoryServiceFromAddr(addr: string): DirectoryService {
  const a = parseAddr(addr);
  if (a.kind === 'memory') return new MemoryDirectoryService();
  if (a.kind === 'file') return new DiskDirectoryService(diskLayout(a.root));
  if (a.kind === 's3') return new PgDirectoryService(a.indexUrl);
  if (a.kind === 'postgres') return new PgDirectoryService(a.url);
  return new GrpcDirectoryService(a.addr);
}
