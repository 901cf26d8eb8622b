// A maximum-size BlobBatchService.Has (~123k digests in one 4 MiB message)
// must not hold the daemon's event loop: while another process runs four in
// parallel, this one's Stats keep being answered. Measured as the daemon's
// own CPU time (/proc) spent between two answered Stats, not as wall time
// (the machine is shared): a Has that runs in one go costs about a second
// of CPU before anything else is answered; one that yields, a slice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { blobServiceDef } from '../../src/grpc/definitions.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { cpuTicks } from '../helpers/proc-usage.js';

/** Daemon CPU between two answered Stats, in ms: a slice of a Has costs a few. */
const MAX_STALL_CPU_MS = 300;
const FLOOD = fileURLToPath(new URL('../helpers/has-flood.js', import.meta.url));

let daemon: DaemonProcess;
before(async () => (daemon = await startDaemonProcess()));
after(async () => void (await daemon.stop()));

for (const kind of ['lean', 'deadline'] as const) {
  test(`4 parallel maximum Has calls (${kind === 'lean' ? 'lean path' : 'grpc-js, with a deadline'}) hold another client's Stat for less than ${MAX_STALL_CPU_MS} ms of daemon CPU`, async () => {
    const probe = new grpc.Client(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
    const stat = () =>
      new Promise<void>((resolve, reject) =>
        probe.makeUnaryRequest(blobServiceDef().Stat.path, (b: Buffer) => b, (b: Buffer) => b, statReq, new grpc.Metadata(), (err) =>
          !err || err.code === grpc.status.NOT_FOUND ? resolve() : reject(err),
        ),
      );
    const statReq = Buffer.concat([Buffer.from([0x0a, 32]), randomBytes(32)]);
    try {
      await stat(); // connected and warm
      const flood = spawn(process.execPath, [FLOOD, daemon.socket, kind], { stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      flood.stderr!.on('data', (d) => (log += d));
      await once(flood.stdout!, 'data'); // "sending"
      const exited = once(flood, 'exit');
      let done = false;
      void exited.then(() => (done = true));
      const pid = daemon.child.pid!;
      let worst = 0;
      let probes = 0;
      let last = cpuTicks(pid);
      while (!done) {
        await stat();
        const now = cpuTicks(pid);
        worst = Math.max(worst, (now - last) * 10); // ticks of 10 ms
        last = now;
        probes++;
      }
      const [code] = await exited;
      assert.equal(code, 0, `the Has calls failed: ${log}`);
      assert.ok(probes > 1, 'the probe ran while the Has calls did');
      assert.ok(worst < MAX_STALL_CPU_MS, `the daemon spent ${worst} ms of CPU before answering another client's Stat (bound ${MAX_STALL_CPU_MS} ms, ${probes} probes)`);
    } finally {
      probe.close();
    }
  });
}
