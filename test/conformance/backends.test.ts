// Runs every conformance suite against every backend: memory://, the
// on-disk file:// store, the scale-out store (S3 on a real Ceph RGW +
// PostgreSQL, started by the test command), and gRPC clients talking to a
// real `nix-castore daemon` process on a unix socket serving an on-disk or
// a scale-out store.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { blobServiceSuite, type Backend } from './blob-service.suite.js';
import { directoryServiceSuite } from './directory-service.suite.js';
import { pathInfoServiceSuite } from './pathinfo-service.suite.js';
import { storeStatsSuite } from './store-stats.suite.js';
import { blobDeltaSuite } from './blob-delta.suite.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';

type Factory = () => Promise<Backend<Store>>;

const backends: [string, Factory][] = [
  ['memory://', async () => {
    const store = openStore(sameAddr('memory://'));
    return { service: store, cleanup: () => store.close() };
  }],
  ['file://', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'castore-conf-'));
    const store = openStore(sameAddr(fileAddr(dir)));
    return { service: store, cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    } };
  }],
  ['grpc+unix:// → daemon → file://', async () => {
    const daemon = await startDaemonProcess();
    const store = openStore(sameAddr(daemon.addr));
    return { service: store, cleanup: async () => {
      await store.close();
      await daemon.stop();
    } };
  }],
  ['s3:// + postgres://', async () => {
    const s = await freshScaleoutAddr('conformance');
    const store = openStore(sameAddr(s.addr));
    return { service: store, cleanup: async () => {
      await store.close();
      await s.drop();
    } };
  }],
  ['s3:// + postgres:// (compression=none)', async () => {
    const s = await freshScaleoutAddr('conformance-raw');
    const store = openStore(sameAddr(`${s.addr}&compression=none`));
    return { service: store, cleanup: async () => {
      await store.close();
      await s.drop();
    } };
  }],
  ['grpc+unix:// → daemon → s3:// + postgres://', async () => {
    const s = await freshScaleoutAddr('conformance-daemon');
    const daemon = await startDaemonProcess({ args: ['--store', s.addr] });
    const store = openStore(sameAddr(daemon.addr));
    return { service: store, cleanup: async () => {
      await store.close();
      await daemon.stop();
      await s.drop();
    } };
  }],
];

for (const [name, make] of backends) {
  const part = <T>(pick: (s: Store) => T) => async (): Promise<Backend<T>> => {
    const be = await make();
    return { service: pick(be.service), cleanup: be.cleanup };
  };
  blobServiceSuite(name, part((s) => s.blobs));
  blobDeltaSuite(name, part((s) => s.blobs));
  directoryServiceSuite(name, part((s) => s.directories));
  pathInfoServiceSuite(name, make);
  storeStatsSuite(name, make);
}
