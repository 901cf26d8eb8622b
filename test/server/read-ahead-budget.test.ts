// The NAR renderer reads the next small files of a directory ahead, by the
// size each entry states. 16 entries that claim 1 byte but point at a
// 128 MiB blob used to load the blob 16 times (RSS 2.4 GiB); reads ahead
// are now budgeted by the bytes really read, and the rendering fails
// naming the blob. Measured as the daemon's peak RSS (VmHWM).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import { b3String } from '../../src/castore/digest.js';
import type { Directory } from '../../src/castore/messages.js';
import { pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { Writer } from '../helpers/grpc-writes.js';
import { peakRssKiB } from '../helpers/proc-usage.js';

const BIG = 128 << 20;
/** Far above one blob's worth of buffers, far below 16 copies of it. */
const MAX_PEAK_MIB = 600;

let daemon: DaemonProcess;
let w: Writer;
let dir: Directory;
let big: Uint8Array;

before(async () => {
  daemon = await startDaemonProcess();
  // Written straight into the daemon's data directory (the store is shared
  // between processes), so the test does not depend on what Directory Put checks.
  const store = openStore(sameAddr(fileAddr(daemon.dataDir)));
  try {
    const wr = store.blobs.put();
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < BIG >> 20; i++) {
      chunk.fill(i);
      await wr.write(chunk);
    }
    big = await wr.close();
    dir = {
      directories: [],
      files: Array.from({ length: 16 }, (_, i) => ({ name: Buffer.from(`f${String(i).padStart(2, '0')}`), digest: big, size: 1, executable: false })),
      symlinks: [],
    };
    await putClosure(store.directories, [dir]);
  } finally {
    await store.close();
  }
  w = new Writer(daemon.socket);
});
after(async () => {
  w.close();
  await daemon.stop();
});

test('CalculateNAR of 16 entries claiming 1 byte of a 128 MiB blob fails without loading it', async () => {
  const before = peakRssKiB(daemon.child.pid!);
  const def = pathInfoServiceDef().CalculateNAR;
  const node = { type: 'directory' as const, name: Buffer.from(''), digest: directoryDigest(dir), size: directorySize(dir) };
  const err = await new Promise<grpc.ServiceError | null>((resolve) =>
    w.client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, { node }, (e) => resolve(e)),
  );
  const peakMiB = peakRssKiB(daemon.child.pid!) / 1024;
  assert.ok(peakMiB < MAX_PEAK_MIB, `the daemon's peak RSS went from ${(before / 1024).toFixed(0)} to ${peakMiB.toFixed(0)} MiB`);
  assert.equal(err?.code, grpc.status.DATA_LOSS, err?.details);
  assert.match(err!.details, new RegExp(`${b3String(big).slice(0, 20).replace(/[+/]/g, '.')}.*longer than`));
});

test('PathInfo Put of those entries is refused: a PathInfo whose NAR cannot be rendered is never accepted', async () => {
  const storeDigest = Buffer.alloc(20, 0x5a);
  const node = { type: 'directory' as const, name: Buffer.from(`${nix32(storeDigest)}-stated-sizes`), digest: directoryDigest(dir), size: directorySize(dir) };
  const put = await w.putPathInfo({ node, references: [], narinfo: { narSize: 2000, narSha256: Buffer.alloc(32), signatures: [], referenceNames: [] } });
  assert.equal(put.name, 'INVALID_ARGUMENT', put.details);
  assert.match(put.details, /file 'f00' states size 1, but its blob .* has 134217728 bytes/);
  assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND');
});
