// CPU seconds (user + system, all threads) of a copy and of the daemon it
// copies into, and their peak RSS: the figures to compare before and after
// a change on a shared machine, where wall time moves with the neighbours.
// Usage: node dist/bench/cpu-copy.js daemon|file|floor PATH...
// CPU_PROF_DIR=DIR also writes --cpu-prof profiles of both processes there.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../test/helpers/daemon.js';
import { runCopyJson } from './run-copy.js';
import { fileAddr } from '../src/addr/parse.js';
import { cpuOf, peakRssMiB } from './util.js';
import { onePass } from './floor.js';
import { threadCpu, showThreads } from './thread-cpu.js';

/** Node's flags for a child: --cpu-prof into CPU_PROF_DIR, if set. */
function profArgs(name: string): string[] {
  const dir = process.env.CPU_PROF_DIR;
  const extra = (process.env[`${name.toUpperCase()}_NODE_FLAGS`] ?? '').split(' ').filter(Boolean);
  return dir ? [...extra, '--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${process.pid}-${Date.now()}.cpuprofile`] : extra;
}


async function runCopy(args: string[]): Promise<{ seconds: number; user: number; system: number; rss: number; sent: number }> {
  let threads: ReturnType<typeof threadCpu> | undefined;
  try {
    const { seconds, report: r } = await runCopyJson(args, { nodeArgs: profArgs('copy'), onSpawn: (child) => (threads = threadCpu(child.pid!)) });
    if (process.env.THREADS) console.log(`  copy threads: ${showThreads(threads!.stop())}`);
    return { seconds, user: r.cpuSeconds.user, system: r.cpuSeconds.system, rss: r.peakRssMiB, sent: r.bytesSent };
  } finally {
    threads?.stop();
  }
}

const [mode, ...paths] = process.argv.slice(2);
if (mode === 'floor') {
  const c0 = process.cpuUsage();
  let bytes = 0;
  for (const p of paths) bytes += onePass(p).bytes;
  const c = process.cpuUsage(c0);
  console.log(`floor: ${((c.user + c.system) / 1e6).toFixed(2)} s CPU (${(c.user / 1e6).toFixed(2)} user), ${(bytes / 2 ** 20).toFixed(0)} MiB`);
} else if (mode === 'daemon') {
  const d = await startDaemonProcess({ nodeArgs: profArgs('daemon') });
  try {
    const c0 = cpuOf(d.child.pid!);
    const threads = threadCpu(d.child.pid!);
    const r = await runCopy(['--store', d.addr, ...paths]);
    if (process.env.THREADS) console.log(`  daemon threads (since start): ${showThreads(threads.stop())}`);
    else threads.stop();
    const dc = cpuOf(d.child.pid!) - c0;
    const rss = peakRssMiB(d.child.pid!);
    console.log(`copy → daemon: ${r.seconds.toFixed(2)} s wall; copy CPU ${(r.user + r.system).toFixed(2)} s (${r.user.toFixed(2)} + ${r.system.toFixed(2)}), RSS ${r.rss} MiB; daemon CPU ${dc.toFixed(2)} s, RSS ${rss.toFixed(0)} MiB; sent ${(r.sent / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    await d.stop();
  }
} else if (mode === 'file') {
  const tmp = await mkdtemp(join(tmpdir(), 'cpu-copy-'));
  try {
    const r = await runCopy(['--store', fileAddr(join(tmp, 'store')), ...paths]);
    console.log(`copy → file://: ${r.seconds.toFixed(2)} s wall; CPU ${(r.user + r.system).toFixed(2)} s (${r.user.toFixed(2)} + ${r.system.toFixed(2)}), RSS ${r.rss} MiB`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
} else {
  console.error('usage: cpu-copy daemon|file|floor PATH...');
  process.exit(2);
}
