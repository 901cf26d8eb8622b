// CPU seconds of one large Blob Put (and Read) for the daemon and the
// client, and the daemon's write/fsync syscalls by count and size: figures
// that do not move with the neighbours' load on a shared machine, unlike
// wall time. Usage: node dist/bench/blob-cpu.js [MiB] (default 1024).
// STRACE=1 also traces (STRACE=put: only during the Put) the daemon's writes and syncs (strace -f -T) and
// sums them; CPU_PROF_DIR=DIR writes a --cpu-prof profile of the daemon,
// PERF=FILE a `perf record` of it during the Put; DAEMON_NODE_FLAGS adds
// Node flags (its stderr is printed at the end).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GrpcBlobService } from '../src/grpc/backends/grpc-blob-service.js';
import { startDaemonProcess } from '../test/helpers/daemon.js';
import { putFromPool } from './blob-throughput.js';
import { flush, seconds } from './rounds.js';
import { MiB, cpuOf, peakRssMiB, procStat } from './util.js';

/** CPU seconds (user, system) by thread name: the main thread is the process's name, the thread pool's are libuv-worker. */
function threads(pid: number): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = procStat(`/proc/${pid}/task/${tid}/stat`);
      const name = tid === String(pid) ? 'main' : stat.name;
      const [u, s] = out.get(name) ?? [0, 0];
      out.set(name, [u + stat.user, s + stat.system]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

function threadsSince(before: Map<string, [number, number]>, pid: number): string {
  return [...threads(pid)]
    .map(([n, [u, s]]): [string, number, number] => [n, u - (before.get(n)?.[0] ?? 0), s - (before.get(n)?.[1] ?? 0)])
    .filter(([, u, s]) => u + s >= 0.02)
    .map(([n, u, s]) => `${n} ${u.toFixed(2)}+${s.toFixed(2)}`)
    .join(', ');
}

/** The process's read and write syscalls so far (/proc/PID/io), which strace would slow down. */
function syscalls(pid: number): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return { reads: Number(/syscr: (\d+)/.exec(io)![1]), writes: Number(/syscw: (\d+)/.exec(io)![1]) };
}

const clientCpu = (): number => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
};

/** Per syscall: calls, bytes asked for, seconds inside, and how many wrote ≥ 1 MiB. */
function summarise(trace: string): string {
  const by = new Map<string, { n: number; bytes: number; s: number; big: number }>();
  for (const line of trace.split('\n')) {
    // Calls another thread interrupted are split: "name(args <unfinished ...>", then "<... name resumed>) = ret <s>".
    const m = /(?:<\.\.\. (\w+) resumed>|\s(\w+)\().*= (-?\d+).*<([\d.]+)>$/.exec(line);
    if (!m) continue;
    const name = m[1] ?? m[2];
    const e = by.get(name) ?? { n: 0, bytes: 0, s: 0, big: 0 };
    e.n++;
    const ret = Number(m[3]);
    if (/^(p?writev?|pwrite64|pwritev)$/.test(name)) {
      e.bytes += Math.max(0, ret);
      if (ret >= MiB) e.big++;
    }
    e.s += Number(m[4]);
    by.set(name, e);
  }
  return [...by].map(([k, v]) => `${k}: ${v.n} calls${v.bytes ? `, ${(v.bytes / MiB).toFixed(0)} MiB (${v.big} of ≥ 1 MiB)` : ''}, ${v.s.toFixed(2)} s inside`).join('\n  ');
}

const size = Number(process.argv[2] ?? 1024) * MiB;
const prof = process.env.CPU_PROF_DIR;
const nodeArgs = (process.env.DAEMON_NODE_FLAGS ?? '').split(' ').filter(Boolean);
// DAEMON=ADDR,PID: a daemon started by hand (e.g. with --trace-gc, whose stdout a child's would lose).
const given = process.env.DAEMON?.split(',');
const daemon = given ? { addr: given[0], child: { pid: Number(given[1]) }, tmp: '/tmp', stderr: () => '', stop: async () => null } : await startDaemonProcess({ dataDir: process.env.DATA_DIR, nodeArgs: [...nodeArgs, ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []), ...(process.env.PERF ? ['--perf-basic-prof'] : [])] });
const pid = daemon.child.pid!;
const blobs = new GrpcBlobService(daemon.addr);
try {
  await putFromPool(blobs, 2 * MiB, 999); // connection and store set up outside the figures
  let strace: ReturnType<typeof spawn> | undefined;
  const traceFile = process.env.STRACE_FILE ?? join(daemon.tmp, 'strace.txt');
  if (process.env.STRACE) {
    strace = spawn('strace', ['-f', '-T', '-qq', '-tt', '-e', 'trace=write,writev,pwrite64,pwritev,fsync,fdatasync,ftruncate,read,readv,pread64', '-o', traceFile, '-p', String(pid)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1000));
  }
  // PERF=FILE: `perf record` of the daemon during the Put (start it with --perf-basic-prof for JS names).
  const perf = process.env.PERF ? spawn('perf', ['record', '-F', '999', '-g', '-o', process.env.PERF, '-p', String(pid)], { stdio: 'ignore' }) : undefined;
  if (perf) await new Promise((r) => setTimeout(r, 1000));
  flush();
  let d0 = cpuOf(pid);
  let th0 = threads(pid);
  let io0 = syscalls(pid);
  let c0 = clientCpu();
  let t0 = process.hrtime.bigint();
  const digest = await putFromPool(blobs, size, 0);
  const putS = seconds(t0);
  const putD = cpuOf(pid) - d0;
  const putC = clientCpu() - c0;
  const putThreads = threadsSince(th0, pid);
  const io = syscalls(pid);
  const putIo = `${io.reads - io0.reads} reads, ${io.writes - io0.writes} writes`;
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((r) => perf.once('exit', r));
  }
  if (strace && process.env.STRACE === 'put') {
    strace.kill('SIGINT');
    await new Promise((r) => strace!.once('exit', r));
    strace = undefined;
    console.log(`daemon syscalls during the Put:\n  ${summarise(readFileSync(traceFile, 'utf8'))}`);
  }
  flush();
  const gb = size / 1e9;
  console.log(`Put  ${(size / MiB).toFixed(0)} MiB: ${putS.toFixed(2)} s wall (${(gb / putS).toFixed(2)} GB/s); daemon CPU ${putD.toFixed(2)} s (user+system: ${putThreads}), client CPU ${putC.toFixed(2)} s; daemon syscalls: ${putIo}`);
  if (process.env.READ !== '0') {
    d0 = cpuOf(pid);
    th0 = threads(pid);
    c0 = clientCpu();
    t0 = process.hrtime.bigint();
    let n = 0;
    for await (const c of (await blobs.read(digest))!) n += c.length;
    if (n !== size) throw new Error(`read ${n} bytes, expected ${size}`);
    const readS = seconds(t0);
    console.log(`Read ${(size / MiB).toFixed(0)} MiB: ${readS.toFixed(2)} s wall (${(gb / readS).toFixed(2)} GB/s); daemon CPU ${(cpuOf(pid) - d0).toFixed(2)} s (${threadsSince(th0, pid)}), client CPU ${(clientCpu() - c0).toFixed(2)} s`);
  }
  if (strace) {
    strace.kill('SIGINT');
    await new Promise((r) => strace!.once('exit', r));
  }
  console.log(`daemon peak RSS ${peakRssMiB(pid).toFixed(0)} MiB`);
  if (strace) console.log(`daemon syscalls (Put and Read):\n  ${summarise(readFileSync(traceFile, 'utf8'))}`);
  if (nodeArgs.length) console.log(daemon.stderr());
} finally {
  await blobs.close();
  await daemon.stop();
}
