// PathInfo service addresses, and opening all three services at once.
import type { PathInfoService } from './pathinfo-service.js';
import type { Castore } from './render-nar.js';
import { parseAddr, diskLayout, blobServiceFromAddr, directoryServiceFromAddr } from '../castore/from-addr.js';
import { MemoryPathInfoService } from './backends/memory-pathinfo-service.js';
import { DiskPathInfoService } from './backends/disk-pathinfo-service.js';
import { GrpcPathInfoService } from './backends/grpc-pathinfo-service.js';
import { PgPathInfoService } from '../scaleout/pg-pathinfo-service.js';

/** Local backends check content and compute NARs against `castore`. */
export function pathInfoServiceFromAddr(addr: string, castore: Castore): PathInfoService {
  const a = parseAddr(addr);
  if (a.kind === 'memory') return new MemoryPathInfoService(castore);
  if (a.kind === 'file') return new DiskPathInfoService(diskLayout(a.root), castore);
  if (a.kind === 's3') return new PgPathInfoService(a.indexUrl, castore);
  if (a.kind === 'postgres') return new PgPathInfoService(a.url, castore);
  return new GrpcPathInfoService(a.addr);
}

export interface StoreAddrs {
  blob: string;
  directory: string;
  pathInfo: string;
}

export interface Store extends Castore {
  pathInfos: PathInfoService;
  close(): Promise<void>;
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
    blob: env.BLOB_SERVICE_ADDR || fallback.blob,
    directory: env.DIRECTORY_SERVICE_ADDR || fallback.directory,
    pathInfo: env.PATH_INFO_SERVICE_ADDR || fallback.pathInfo,
  };
}
