// The composition root: addresses → services. Every backend is built here
// and nowhere else.
import type { BlobService } from '../castore/blob-service.js';
import type { DirectoryService } from '../castore/directory-service.js';
import { MemoryBlobService } from '../castore/memory/memory-blob-service.js';
import { MemoryDirectoryService } from '../castore/memory/memory-directory-service.js';
import { DiskBlobService } from '../castore/disk/disk-blob-service.js';
import { DiskDirectoryService } from '../castore/disk/disk-directory-service.js';
import { DiskLayout } from '../castore/disk/disk-layout.js';
import { GrpcBlobService } from '../grpc/backends/grpc-blob-service.js';
import { GrpcDirectoryService } from '../grpc/backends/grpc-directory-service.js';
import { invalid } from '../castore/errors.js';
import { S3BlobService } from '../scaleout/s3-blob-service.js';
import { PgDirectoryService } from '../scaleout/pg-directory-service.js';
import type { PathInfoService } from '../store/pathinfo-service.js';
import type { Castore } from '../store/render-nar.js';
import type { Store, StoreAddrs } from '../store/store.js';
import { parseAddr } from './parse.js';
import { join } from 'node:path';
import { HookIndex } from '../castore/delta/hook-index.js';
import { hookedBlobs } from '../castore/delta/hooked-blobs.js';
import { DeltaStore } from '../castore/delta/delta-store.js';
import { PgHookIndex } from '../scaleout/pg-hook-index.js';
import { SERVICE_ADDR_ENV } from './config.js';
import { MemoryPathInfoService } from '../store/backends/memory-pathinfo-service.js';
import { DiskPathInfoService } from '../store/backends/disk-pathinfo-service.js';
import { GrpcPathInfoService } from '../grpc/backends/grpc-pathinfo-service.js';
import { PgPathInfoService } from '../scaleout/pg-pathinfo-service.js';

export type { Store, StoreAddrs } from '../store/store.js';

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

/** Local backends check content and compute NARs against `castore`. */
export function pathInfoServiceFromAddr(addr: string, castore: Castore): PathInfoService {
  const a = parseAddr(addr);
  if (a.kind === 'memory') return new MemoryPathInfoService(castore);
  if (a.kind === 'file') return new DiskPathInfoService(diskLayout(a.root), castore);
  if (a.kind === 's3') return new PgPathInfoService(a.indexUrl, castore);
  if (a.kind === 'postgres') return new PgPathInfoService(a.url, castore);
  return new GrpcPathInfoService(a.addr);
}

export function openStore(addrs: StoreAddrs): Store {
  const blobs = blobServiceFromAddr(addrs.blob);
  const directories = directoryServiceFromAddr(addrs.directory);
  const pathInfos = pathInfoServiceFromAddr(addrs.pathInfo, { blobs, directories });
  return {
    blobs,
    directories,
    pathInfos,
    async close() {
      await Promise.all([blobs.close(), directories.close(), pathInfos.close()]);
    },
  };
}

export const sameAddr = (addr: string): StoreAddrs => ({ blob: addr, directory: addr, pathInfo: addr });

/** `BLOB_SERVICE_ADDR` etc. over `fallback`, as tvix-store reads them. */
export function addrsFromEnv(fallback: StoreAddrs, env: NodeJS.ProcessEnv = process.env): StoreAddrs {
  return {
    blob: env[SERVICE_ADDR_ENV.blob] || fallback.blob,
    directory: env[SERVICE_ADDR_ENV.directory] || fallback.directory,
    pathInfo: env[SERVICE_ADDR_ENV.pathInfo] || fallback.pathInfo,
  };
}

/**
 * Delta uploads over a store a daemon serves: its Puts record the hooks of
 * large blobs from now on (store.blobs is replaced by the recording one),
 * kept beside an on-disk store's blobs (`delta-hooks`), in a scale-out
 * store's PostgreSQL (`delta_hooks`), in memory for other backends (lost
 * at a restart: only hints).
 */
export async function withDeltas(store: Store, blobAddr: string): Promise<DeltaStore> {
  const a = parseAddr(blobAddr);
  const index = a.kind === 'file' ? await HookIndex.atPath(join(a.root, 'delta-hooks')) : a.kind === 's3' ? PgHookIndex.open(a.indexUrl) : HookIndex.inMemory();
  store.blobs = hookedBlobs(store.blobs, index);
  return new DeltaStore(store.blobs, index);
}
