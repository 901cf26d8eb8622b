// Issue 18, finding 4: CalculateNAR stops when its client goes away. A
// Directory DAG bomb (48 levels, two entries per level pointing at the
// level below) renders an astronomically large NAR; 8 calls on it are
// cancelled once the daemon is busy, after which its CPU time (from /proc)
// must stay nearly flat instead of staying pinned.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer } from '../helpers/grpc-writes.js';
import { pathInfoServiceDef } from '../../src/grpc/definitions.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';

let daemon: DaemonProcess;

before(async () => {
  daemon = await startDaemonProcess();
});

after(async () => {
  await daemon?.stop();
});

/** User + system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('cancelled CalculateNAR calls on a DAG bomb stop using CPU', async () => {
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
  const node = { type: 'directory' as const, name: Buffer.alloc(0), digest: directoryDigest(root), size: directorySize(root) };

  const pid = daemon.child.pid!;
  const client = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
  const m = pathInfoServiceDef().CalculateNAR;
  const start = cpuSeconds(pid);
  const handles: grpc.ClientUnaryCall[] = [];
  const answers = Array.from(
    { length: 8 },
    () => new Promise<string>((resolve) => handles.push(client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { node }, (err) => resolve(err ? grpc.status[err.code] : 'OK')))),
  );
  // Busy: it has spent a second of CPU on them.
  while (cpuSeconds(pid) - start < 1) await sleep(50);
  for (const c of handles) c.cancel();
  assert.deepEqual(new Set(await Promise.all(answers)), new Set(['CANCELLED']));
  await sleep(500); // the cancellations reach the daemon
  const before = cpuSeconds(pid);
  await sleep(3000);
  const spent = cpuSeconds(pid) - before;
  client.close();
  assert.ok(spent < 0.5, `the daemon used ${spent.toFixed(2)} s of CPU in the 3 s after every client left`);
  assert.equal(daemon.child.exitCode, null);
});
