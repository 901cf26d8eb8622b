// Issue 18, finding 4: CalculateNAR stops when its client goes away. A
// Directory DAG bomb (48 levels, two entries per level pointing at the
// level below) renders an astronomically large NAR; 8 calls on it are
// cancelled once the daemon is busy, after which its CPU time (from /proc)
// must stay nearly flat instead of staying pinned. Also through a daemon
// whose store is another daemon (the gRPC client backend): the cancellation
// reaches the daemon doing the work.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer } from '../helpers/grpc-writes.js';
import { cpuDuring, cpuTicks } from '../helpers/proc-usage.js';
import { pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory, Node } from '../../src/castore/messages.js';

let daemon: DaemonProcess;
let bomb: Node;

before(async () => {
  daemon = await startDaemonProcess();
  const dirs: Directory[] = [{ directories: [], files: [], symlinks: [{ name: Buffer.from('l'), target: Buffer.from('t') }] }];
  for (let i = 1; i < 48; i++) {
    const below = dirs[i - 1];
    const child = { digest: directoryDigest(below), size: directorySize(below) };
    dirs.push({ directories: [{ name: Buffer.from('a'), ...child }, { name: Buffer.from('b'), ...child }], files: [], symlinks: [] });
  }
  const w = new Writer(daemon.socket);
  assert.equal((await w.putDirectories(dirs)).name, 'OK');
  w.close();
  const root = dirs[dirs.length - 1];
  bomb = { type: 'directory', name: Buffer.alloc(0), digest: directoryDigest(root), size: directorySize(root) };
});

after(async () => {
  await daemon?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 8 CalculateNARs of the bomb sent to `socket`, cancelled once `worker` has spent a second of CPU; what `worker` spends in the 3 s after. */
async function cancelledBombs(socket: string, worker: number): Promise<number> {
  const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  const m = pathInfoServiceDef().CalculateNAR;
  const start = cpuTicks(worker);
  const handles: grpc.ClientUnaryCall[] = [];
  const answers = Array.from(
    { length: 8 },
    () => new Promise<string>((resolve) => handles.push(client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { node: bomb }, (err) => resolve(err ? grpc.status[err.code] : 'OK')))),
  );
  while (cpuTicks(worker) - start < 100) await sleep(50);
  for (const c of handles) c.cancel();
  assert.deepEqual(new Set(await Promise.all(answers)), new Set(['CANCELLED']));
  await sleep(500); // the cancellations reach the daemon(s)
  const spent = (await cpuDuring(worker, 3000)) / 100;
  client.close();
  return spent;
}

it('cancelled CalculateNAR calls on a DAG bomb stop using CPU', async () => {
  const spent = await cancelledBombs(daemon.socket, daemon.child.pid!);
  assert.ok(spent < 0.5, `the daemon used ${spent.toFixed(2)} s of CPU in the 3 s after every client left`);
  assert.equal(daemon.child.exitCode, null);
});

it('through a daemon serving another daemon (grpc+unix:// store), the cancellation reaches the one rendering', async () => {
  const front = await startDaemonProcess({ args: ['--store', `grpc+unix://${daemon.socket}`] });
  try {
    const spent = await cancelledBombs(front.socket, daemon.child.pid!);
    assert.ok(spent < 0.5, `the daemon behind used ${spent.toFixed(2)} s of CPU in the 3 s after every client of the front daemon left`);
    assert.equal(front.child.exitCode, null);
  } finally {
    await front.stop();
  }
});
