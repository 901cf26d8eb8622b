// Copying a closure of real files (trees from /usr added to the Nix store)
// against the floor — BLAKE3 of every file plus SHA-256 of the NAR
// (`nix-store --dump | sha256sum`), the two hashes copy must compute — and
// against `nix copy` to a file:// binary cache, all in one run: every
// contender twice, interleaved, each into an empty store; best round shown.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, readdir, lstat, appendFile } from 'node:fs/promises';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Blake3Stream } from '../src/castore/digest.js';
import { startDaemonProcess, CLI } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { timed, table, GiB, MiB, peakRssMiB, summary } from './util.js';
import { fileAddr } from '../src/addr/parse.js';

const CANDIDATES = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/share', '/usr/lib/jvm', '/usr/lib/llvm-14', '/usr/lib/gcc', '/usr/lib/python3', '/usr/lib/python3.11', '/usr/libexec', '/usr/include', '/usr/bin', '/usr/local'];

function duBytes(dir: string): number {
  try {
    return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
  } catch {
    return 0;
  }
}

/** Adds /usr trees to the Nix store until `target` bytes; returns the store paths. */
export function realFilesClosure(target: number): { paths: string[]; bytes: number } {
  const paths: string[] = [];
  let bytes = 0;
  for (const dir of CANDIDATES) {
    if (bytes >= target) break;
    const size = duBytes(dir);
    if (size === 0) continue;
    try {
      paths.push(execFileSync('nix-store', ['--add', dir], { encoding: 'utf8', env: nixEnv(), stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      bytes += size;
    } catch {
      // unreadable or special files: skip that tree
    }
  }
  return { paths, bytes };
}

/** Every regular file below `p`. */
async function filesOf(p: string, out: string[] = []): Promise<string[]> {
  const st = await lstat(p);
  if (st.isDirectory()) for (const e of await readdir(p)) await filesOf(join(p, e), out);
  else if (st.isFile()) out.push(p);
  return out;
}

/**
 * BLAKE3 of every file below `p`, read synchronously into one reused
 * buffer: the cheapest way Node has to read many small files (an async read
 * is a thread-pool round trip per open, read and close, which would inflate
 * the floor).
 */
async function blake3Tree(p: string): Promise<number> {
  const buf = Buffer.allocUnsafe(MiB);
  let n = 0;
  for (const file of await filesOf(p)) n += blake3File(file, buf);
  return n;
}

function blake3File(p: string, buf: Buffer): number {
  const fd = openSync(p, 'r');
  const hash = new Blake3Stream();
  let n = 0;
  try {
    for (;;) {
      const bytesRead = readSync(fd, buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      n += bytesRead;
    }
  } finally {
    closeSync(fd);
  }
  hash.digest();
  return n;
}

function runCopy(args: string[]): Promise<{ seconds: number; report: { bytesRead: number; bytesSent: number; blobsSent: number; peakRssMiB: number } }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, 'copy', '--json', ...args], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`copy exited ${code}: ${err}`));
      resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, report: JSON.parse(out) });
    });
  });
}

/** CPU seconds a process has used so far, all its threads (Linux /proc). */
function processCpu(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tick = 100; // USER_HZ on Linux
  return { user: Number(fields[11]) / tick, system: Number(fields[12]) / tick };
}

/** A copy of `src` with every 20th file changed, added to the store: a 5% change. */
async function changedCopy(src: string, tmp: string): Promise<{ path: string; changed: number }> {
  const dir = join(tmp, 'changed');
  execFileSync('cp', ['-a', src, dir]);
  execFileSync('chmod', ['-R', 'u+w', dir]);
  const files = await filesOf(dir);
  let changed = 0;
  for (let i = 0; i < files.length; i += 20) {
    await appendFile(files[i], `changed ${i}\n`);
    changed++;
  }
  const path = execFileSync('nix-store', ['--add', dir], { encoding: 'utf8', env: nixEnv(), stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  await rm(dir, { recursive: true, force: true });
  return { path, changed };
}

/** Rounds of every contender, interleaved; each figure is its best round (the machine is shared and noisy). */
const ROUNDS = 2;

type CopyRun = Awaited<ReturnType<typeof runCopy>>;

export async function copyClosureBench(target = GiB): Promise<string> {
  const { paths } = realFilesClosure(target);
  // Warm the page cache so every contender reads from memory.
  for (const p of paths) await blake3Tree(p);
  const tmp = await mkdtemp(join(tmpdir(), 'bench-copy-'));
  const floors: { b3: number; sha: number; bytes: number }[] = [];
  const locals: CopyRun[] = [];
  const copies: { run: CopyRun; cpu: { user: number; system: number }; rss: number }[] = [];
  const nixCopies: number[] = [];
  let daemon: Awaited<ReturnType<typeof startDaemonProcess>> | undefined;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const b3 = await timed(async () => {
        let n = 0;
        for (const p of paths) n += await blake3Tree(p);
        return n;
      });
      const sha = await timed(async () => {
        for (const p of paths) execFileSync('sh', ['-c', `nix-store --dump "$1" | sha256sum > /dev/null`, 'sh', p], { env: nixEnv() });
      });
      floors.push({ b3: b3.seconds, sha: sha.seconds, bytes: b3.value });
      // Each copy into an empty store of its own.
      locals.push(await runCopy(['--store', fileAddr(join(tmp, `local-store-${round}`)), ...paths]));
      await daemon?.stop();
      daemon = await startDaemonProcess();
      const cpu0 = processCpu(daemon.child.pid!);
      const run = await runCopy(['--store', daemon.addr, ...paths]);
      const cpu1 = processCpu(daemon.child.pid!);
      copies.push({ run, cpu: { user: cpu1.user - cpu0.user, system: cpu1.system - cpu0.system }, rss: peakRssMiB(daemon.child.pid!) });
      const nixCopy = await timed(async () => {
        execFileSync('nix', ['copy', '--to', `file://${join(tmp, `nix-cache-${round}`)}?compression=none`, ...paths], { env: nixEnv(), stdio: 'ignore' });
      });
      nixCopies.push(nixCopy.seconds);
    }
    // Into the last round's daemon, which holds the whole closure.
    const again = await runCopy(['--store', daemon!.addr, ...paths]);
    const changed = await changedCopy(paths[0], tmp);
    const incr = await runCopy(['--store', daemon!.addr, changed.path]);
    execFileSync('nix-store', ['--delete', changed.path], { env: nixEnv(), stdio: 'ignore' });

    const floorOf = (f: (typeof floors)[number]) => f.b3 + f.sha;
    const bestFloor = floors.reduce((a, b) => (floorOf(b) < floorOf(a) ? b : a));
    const floor = floorOf(bestFloor);
    const bytes = bestFloor.bytes;
    summary.floorBytesPerSecond = bytes / floor;
    const local = locals.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const best = copies.reduce((a, b) => (b.run.seconds < a.run.seconds ? b : a));
    const copy = best.run;
    const nixBest = Math.min(...nixCopies);
    const r = (s: number) => `${(s / floor).toFixed(2)}×`;
    const runs = (xs: number[]) => `runs ${xs.map((x) => x.toFixed(1)).join(' s, ')} s`;
    const sent = (c: { report: { bytesSent: number; bytesRead: number; blobsSent: number } }) =>
      `${(c.report.bytesSent / MiB).toFixed(0)} MiB sent of ${(c.report.bytesRead / MiB).toFixed(0)} MiB read, ${c.report.blobsSent} blobs`;
    const rows: [string, string, string][] = [
      ['floor: BLAKE3 + nix-store --dump | sha256sum', `${floor.toFixed(2)} s`, `1.00× (BLAKE3 ${bestFloor.b3.toFixed(2)} s + NAR SHA-256 ${bestFloor.sha.toFixed(2)} s; ${runs(floors.map(floorOf))})`],
      ['nix-castore copy → local store (file://)', `${local.seconds.toFixed(2)} s`, `${r(local.seconds)}; ${sent(local)}; ${runs(locals.map((c) => c.seconds))}`],
      ['nix-castore copy → daemon (grpc+unix)', `${copy.seconds.toFixed(2)} s`, `${r(copy.seconds)} (target ≤ 1.50×); ${sent(copy)}; ${runs(copies.map((c) => c.run.seconds))}`],
      ['nix copy --to file://…?compression=none', `${nixBest.toFixed(2)} s`, `${r(nixBest)}; ${runs(nixCopies)}`],
      ['re-copy (everything present)', `${again.seconds.toFixed(2)} s`, `${r(again.seconds)}; ${again.report.bytesSent} bytes sent`],
      [`incremental: ${changed.changed} files (5%) of ${paths[0].slice(44)} changed`, `${incr.seconds.toFixed(2)} s`, `${r(incr.seconds)}; ${sent(incr)}`],
      ['daemon CPU during the copy: user / system', `${best.cpu.user.toFixed(1)} s`, `${best.cpu.system.toFixed(1)} s (system time is mostly file creation and fsync)`],
      ['peak RSS: copy / daemon', `${copy.report.peakRssMiB} MiB`, `${best.rss.toFixed(0)} MiB`],
    ];
    summary.rows.push(...rows);
    return [
      `Copy of a real-files closure: ${paths.length} paths, ${(bytes / GiB).toFixed(2)} GiB of files (${paths.join(' ')}); each figure the best of ${ROUNDS} interleaved rounds:`,
      table(rows),
    ].join('\n');
  } finally {
    await daemon?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}
