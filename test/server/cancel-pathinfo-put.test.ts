// A PathInfo Put checks that everything its root refers to is in the
// store: for a closure of tens of thousands of directories, seconds of
// work from a request of a few hundred bytes. A client that resets its
// call must stop that work, and nothing may be published for it.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer } from '../helpers/grpc-writes.js';
import { cpuDuring, cpuTicks } from '../helpers/proc-usage.js';
import { pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory, DirectoryNode } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';

/** Distinct directories, each holding the one before: each is read and checked once. */
const CHAIN = 30_000;

let daemon: DaemonProcess;
let root: DirectoryNode;

before(async () => {
  daemon = await startDaemonProcess();
  const dirs: Directory[] = [];
  for (let i = 0; i < CHAIN; i++) {
    const below = dirs[i - 1];
    dirs.push({
      directories: below ? [{ name: Buffer.from('d'), digest: directoryDigest(below), size: directorySize(below) }] : [],
      files: [],
      symlinks: [{ name: Buffer.from('s'), target: Buffer.from(String(i)) }],
    });
  }
  const w = new Writer(daemon.socket);
  assert.equal((await w.putDirectories(dirs)).name, 'OK');
  w.close();
  const top = dirs[dirs.length - 1];
  root = { name: Buffer.alloc(0), digest: directoryDigest(top), size: directorySize(top) };
});

after(async () => {
  await daemon?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A PathInfo of its own store path whose root is the chain. */
function chainPathInfo(label: string): { info: PathInfo; storeDigest: Buffer } {
  const storeDigest = Buffer.from(blake3(Buffer.from(label)).subarray(0, 20));
  const info: PathInfo = {
    node: { type: 'directory', ...root, name: Buffer.from(`${nix32(storeDigest)}-${label}`) },
    references: [],
    narinfo: { narSize: 1000, narSha256: Buffer.alloc(32, 7), signatures: [], referenceNames: [] },
  };
  return { info, storeDigest };
}

it('a cancelled PathInfo Put stops checking its closure and publishes nothing', async () => {
  const client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
  const m = pathInfoServiceDef().Put;
  const worker = daemon.child.pid!;
  const puts = Array.from({ length: 4 }, (_, i) => chainPathInfo(`cancelled-${i}`));
  const start = cpuTicks(worker);
  const handles: grpc.ClientUnaryCall[] = [];
  const answers = puts.map(
    ({ info }) => new Promise<string>((resolve) => handles.push(client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, info, (err) => resolve(err ? grpc.status[err.code] : 'OK')))),
  );
  // Once the daemon is busy checking (half a second of CPU), every client goes away.
  while (cpuTicks(worker) - start < 50) await sleep(20);
  for (const c of handles) c.cancel();
  assert.deepEqual(new Set(await Promise.all(answers)), new Set(['CANCELLED']));
  await sleep(500); // the cancellations reach the daemon
  const spent = (await cpuDuring(worker, 3000)) / 100;
  assert.ok(spent < 0.5, `the daemon used ${spent.toFixed(2)} s of CPU in the 3 s after every client left`);
  const w = new Writer(daemon.socket);
  try {
    for (const { storeDigest } of puts) assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND', 'nothing published for a cancelled Put');
    // The same Put, not cancelled, is accepted: the closure was complete.
    const done = chainPathInfo('completed');
    assert.equal((await w.putPathInfo(done.info)).name, 'OK');
    assert.equal((await w.getPathInfo(done.storeDigest)).name, 'OK');
  } finally {
    w.close();
    client.close();
  }
  assert.equal(daemon.child.exitCode, null);
});
