// A store: the three services, opened together from addresses (see
// src/addr/open.ts).
import type { PathInfoService } from './pathinfo-service.js';
import type { Castore } from './render-nar.js';

export interface StoreAddrs {
  blob: string;
  directory: string;
  pathInfo: string;
}

export interface Store extends Castore {
  pathInfos: PathInfoService;
  close(): Promise<void>;
}
