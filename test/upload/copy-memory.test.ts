// Issue 21: peak RSS of a copy and of the daemon it copies into. A store
// path of many small files (what a copy keeps per file: digests, dedup
// entries, directory nodes, and V8's garbage of them) is copied with the
// real CLI, started with the CLI's own Node flags, into a real daemon; both
// peaks come from /proc. Measured at load 7-10 on the 2-core machine: before
// the change (825b524) the copy peaked at 332-368 MiB and the daemon at
// 166-178 MiB; after it at 295-298 and 150-151 MiB. With the ingest walk
// framing the NAR synchronously and the upload window bounded by count
// (28d38a3) the copy peaked at 218-229 MiB against 272-289 at 6d9c0b3
// (load ~7); with the copy's old generation growing by at most 50%
// (copy-run.ts) at 187 MiB. The copy's bound sits between the last two;
// the daemon's is the target (< 200 MiB).
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, CLI, CLI_NODE_FLAGS, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, requireNix, runNix } from '../helpers/nix.js';
import { peakRssKiB } from '../helpers/proc-usage.js';

const DIRS = 200;
const FILES_PER_DIR = 200;
const COPY_MAX_MIB = 210;
const DAEMON_MAX_MIB = 200;

let tmp: string;
let storePath: string;
let daemon: DaemonProcess;

/** 40,000 distinct files of 1–4 KiB: deterministic, so the store path is the same every run. */
async function manySmallFiles(dir: string): Promise<void> {
  let x = 0x2545f491;
  for (let d = 0; d < DIRS; d++) {
    const sub = join(dir, `d${d}`);
    await mkdir(sub, { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const size = 1024 + ((x >>> 0) % 3072);
      const b = Buffer.alloc(size, (x >>> 8) & 0xff);
      b.writeUInt32LE(d, 0);
      b.writeUInt32LE(f, 4);
      b.writeUInt32LE(x >>> 0, 8);
      await writeFile(join(sub, `f${f}`), b);
    }
  }
}

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'copy-memory-'));
  await manySmallFiles(join(tmp, 'many-small-files'));
  const added = await runNix('nix-store', ['--add', join(tmp, 'many-small-files')]);
  storePath = added.stdout.toString().trim();
  await rm(join(tmp, 'many-small-files'), { recursive: true, force: true });
  daemon = await startDaemonProcess();
});

after(async () => {
  await daemon?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

it('a copy of 40,000 small files stays under its RSS bound, and so does the daemon', async (t) => {
  const report = await new Promise<{ peakRssMiB: number; blobsSent: number; failed: unknown[] }>((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI_NODE_FLAGS, CLI, 'copy', '--json', '--store', daemon.addr, storePath], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`copy exited ${code}: ${err}`))));
  });
  const daemonMiB = peakRssKiB(daemon.child.pid!) / 1024;
  t.diagnostic(`peak RSS: copy ${report.peakRssMiB} MiB, daemon ${daemonMiB.toFixed(0)} MiB`);
  assert.deepEqual(report.failed, []);
  assert.ok(report.blobsSent >= DIRS * FILES_PER_DIR, `sent ${report.blobsSent} blobs`);
  assert.ok(report.peakRssMiB < COPY_MAX_MIB, `copy peak RSS ${report.peakRssMiB} MiB, bound ${COPY_MAX_MIB} MiB`);
  assert.ok(daemonMiB < DAEMON_MAX_MIB, `daemon peak RSS ${daemonMiB.toFixed(0)} MiB, bound ${DAEMON_MAX_MIB} MiB`);
});
