// A maximum-size BlobBatchService.Has (~123k digests in one 4 MiB message)
// must not hold the daemon's event loop: while another process runs four in
// parallel, this one's Stats keep being answered. The bound is generous for
// a shared machine; a Has that runs in one go stalls other calls for seconds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { blobServiceDef } from '../../src/grpc/definitions.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';

const MAX_STALL_MS = 250;
const FLOOD = fileURLToPath(new URL('../helpers/has-flood.js', import.meta.url));

let daemon: DaemonProcess;
before(async () => (daemon = await startDaemonProcess()));
after(async () => void (await daemon.stop()));

for (const kind of ['lean', 'deadline'] as const) {
  test(`4 parallel maximum Has calls (${kind === 'lean' ? 'lean path' : 'grpc-js, with a deadline'}) stall another client's Stat less than ${MAX_STALL_MS} ms`, async () => {
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
      let worst = 0;
      let probes = 0;
      while (!done) {
        const t0 = performance.now();
        await stat();
        worst = Math.max(worst, performance.now() - t0);
        probes++;
      }
      const [code] = await exited;
      assert.equal(code, 0, `the Has calls failed: ${log}`);
      assert.ok(probes > 1, 'the probe ran while the Has calls did');
      assert.ok(worst < MAX_STALL_MS, `another client waited ${worst.toFixed(0)} ms for a Stat (bound ${MAX_STALL_MS} ms, ${probes} probes)`);
    } finally {
      probe.close();
    }
  });
}
