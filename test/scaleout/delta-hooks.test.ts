// Delta uploads on the scale-out store: the hooks live in PostgreSQL
// (src/scaleout/pg-hook-index.ts), so they survive a daemon killed with
// SIGKILL and are shared by every daemon on the store; the table keeps
// the newest entries. Real Ceph RGW + PostgreSQL, real daemons, real Nix.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, CLI } from '../helpers/daemon.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { nixEnv, nixStoreDump, requireNix, runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { PgHookIndex } from '../../src/scaleout/pg-hook-index.js';
import { openPgIndex } from '../../src/scaleout/pg-index.js';
import { blake3 } from '../../src/castore/digest.js';

let tmp: string;
let s: ScaleoutAddr;

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'scaleout-delta-'));
  s = await freshScaleoutAddr('delta');
});
after(async () => {
  await s?.drop();
  await rm(tmp, { recursive: true, force: true });
});

async function addPath(name: string, files: Record<string, Buffer>): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  for (const [f, bytes] of Object.entries(files)) await writeFile(join(dir, f), bytes);
  return (await runNix('nix-store', ['--add', dir])).stdout.toString().trim();
}

describe('delta uploads on S3 + PostgreSQL', () => {
  it('hints survive a daemon killed with SIGKILL and serve another daemon on the store', async () => {
    const lib = randomBytes(3 << 20);
    const a = await startDaemonProcess({ args: ['--store', s.addr, '--local-files', 'none'] });
    const first = await runCli(['copy', '--store', a.addr, await addPath('lib-1.0', { 'lib.so': lib }), '--json']);
    assert.equal(first.code, 0, first.stderr);
    await a.stop('SIGKILL');
    const b = await startDaemonProcess({ args: ['--store', s.addr, '--local-files', 'none'] });
    try {
      const changed = await addPath('lib-1.1', { 'lib.so': Buffer.concat([lib, Buffer.from('one more symbol\n')]) });
      const r = await runCli(['copy', '--store', b.addr, changed, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout) as { blobsAsDeltas: number; bytesSent: number; bytesReused: number };
      assert.equal(report.blobsAsDeltas, 1, r.stdout);
      assert.ok(report.bytesSent < 1 << 20, `${report.bytesSent} bytes sent`);
      const nar = spawnSync(process.execPath, [CLI, 'nar', '--store', b.addr, changed], { maxBuffer: 1 << 30, env: nixEnv() });
      assert.equal(nar.status, 0, nar.stderr.toString());
      const sha = (x: Buffer) => createHash('sha256').update(x).digest('hex');
      assert.equal(sha(nar.stdout), sha(await nixStoreDump(changed)));
    } finally {
      await b.stop();
    }
  });

  it('the table keeps the newest hooks, found again in order', async () => {
    const index = new PgHookIndex(openPgIndex(s.pgUrl), 100);
    try {
      const h = (i: number) => blake3(Buffer.from(`hook ${i}`));
      for (let batch = 0; batch < 5; batch++) {
        await index.add(blake3(Buffer.from(`blob ${batch}`)), Array.from({ length: 1000 }, (_, i) => h(batch * 1000 + i)));
      }
      // Pruned once 4,096 were added: the newest 100 and whatever shares their time (a batch is one statement) stay.
      const oldest = await index.lookup([h(0), h(999)]);
      assert.deepEqual(oldest, [undefined, undefined]);
      const newest = await index.lookup([h(4999), h(4000), blake3(Buffer.from('never added'))]);
      assert.deepEqual(newest, [blake3(Buffer.from('blob 4')), blake3(Buffer.from('blob 4')), undefined]);
    } finally {
      await index.close();
    }
  });
});
