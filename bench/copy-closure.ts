// Copying a closure of real files, against the one-pass floor (floor.ts),
// `nix copy` to a file:// binary cache and the disk's own write + fsync of
// the same bytes, all in one run: every contender ROUNDS times, interleaved,
// each between untimed flushes of the dirty pages and each copy into an
// empty store; the median is reported with every round listed.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, readdir, lstat, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { formatNix32 } from '../src/nix/hash.js';
import { fileAddr } from '../src/addr/parse.js';
import { table, GiB, MiB, peakRssMiB, procStat, summary } from './util.js';
import { ROUNDS, flush, flushedAround, listRounds, median, seconds, verdict } from './rounds.js';
import { onePass } from './floor.js';
import { diskWriteSeconds } from './disk-write.js';
import { fileCount, nixNarHash, realFilesClosure } from './closure-data.js';
import { runCopyJson, type CopyJson } from './run-copy.js';

export { realFilesClosure } from './closure-data.js';

const runCopy = (args: string[]) => runCopyJson(args);

/** CPU seconds a process has used so far, all its threads (Linux /proc). */
function processCpu(pid: number): { user: number; system: number } {
  const { user, system } = procStat(`/proc/${pid}/stat`);
  return { user, system };
}

/** Every regular file below `p`. */
async function filesOf(p: string, out: string[] = []): Promise<string[]> {
  const st = await lstat(p);
  if (st.isDirectory()) for (const e of await readdir(p)) await filesOf(join(p, e), out);
  else if (st.isFile()) out.push(p);
  return out;
}

/** A copy of `src` with every 20th file changed, added to the store: a 5% change. */
async function changedCopy(src: string, tmp: string): Promise<{ path: string; changed: number; changedBytes: number }> {
  const dir = join(tmp, 'changed');
  execFileSync('cp', ['-a', src, dir]);
  execFileSync('chmod', ['-R', 'u+w', dir]);
  const files = await filesOf(dir);
  let changed = 0;
  let changedBytes = 0;
  for (let i = 0; i < files.length; i += 20) {
    await appendFile(files[i], `changed ${i}\n`);
    changedBytes += (await lstat(files[i])).size;
    changed++;
  }
  const path = execFileSync('nix-store', ['--add', dir], { encoding: 'utf8', env: nixEnv(), stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  await rm(dir, { recursive: true, force: true });
  return { path, changed, changedBytes };
}

/** The floor over every path; throws unless its NAR hashes are Nix's. */
function floorPass(paths: string[], expected: string[]): number {
  let bytes = 0;
  paths.forEach((p, i) => {
    const r = onePass(p);
    const got = formatNix32(r.narSha256);
    if (got !== expected[i]) throw new Error(`the floor's NAR hash of ${p} is ${got}, Nix says ${expected[i]}`);
    bytes += r.bytes;
  });
  return bytes;
}

interface DaemonRound {
  seconds: number;
  report: CopyJson;
  daemonCpu: { user: number; system: number };
  daemonRss: number;
}

export async function copyClosureBench(target = GiB): Promise<string> {
  const { paths } = realFilesClosure(target);
  const narHashes = paths.map(nixNarHash);
  const files = fileCount(paths);
  const bytes = floorPass(paths, narHashes); // warms the page cache, checks the floor
  const tmp = await mkdtemp(join(tmpdir(), 'bench-copy-'));
  const floors: number[] = [];
  const diskCached: number[] = [];
  const diskDirect: number[] = [];
  const toDaemon: DaemonRound[] = [];
  const toFile: { seconds: number; report: CopyJson }[] = [];
  const nixUser: number[] = [];
  const nixDurable: number[] = [];
  let daemon: DaemonProcess | undefined;
  const daemonData = join(tmp, 'daemon-store');
  try {
    for (let round = 0; round < ROUNDS; round++) {
      floors.push((await flushedAround(() => floorPass(paths, narHashes))).seconds);

      await daemon?.stop(); // the last round's daemon stays, for the re-copies below
      await rm(daemonData, { recursive: true, force: true });
      daemon = await startDaemonProcess({ dataDir: daemonData, args: ['--data', daemonData] });
      const cpu0 = processCpu(daemon.child.pid!);
      const d = await flushedAround(() => runCopy(['--store', daemon!.addr, ...paths]));
      const cpu1 = processCpu(daemon.child.pid!);
      toDaemon.push({ ...d.value, daemonCpu: { user: cpu1.user - cpu0.user, system: cpu1.system - cpu0.system }, daemonRss: peakRssMiB(daemon.child.pid!) });

      const local = join(tmp, 'local-store');
      toFile.push((await flushedAround(() => runCopy(['--store', fileAddr(local), ...paths]))).value);
      await rm(local, { recursive: true, force: true });

      // As a user sees it, then with the writeback it left behind (durable, like ours).
      const cache = join(tmp, 'nix-cache');
      flush();
      const t0 = process.hrtime.bigint();
      execFileSync('nix', ['copy', '--to', `file://${cache}?compression=none`, ...paths], { env: nixEnv(), stdio: 'ignore' });
      nixUser.push(seconds(t0));
      execFileSync('sync');
      nixDurable.push(seconds(t0));
      await rm(cache, { recursive: true, force: true });

      diskCached.push((await flushedAround(() => diskWriteSeconds(tmp, bytes, false))).seconds);
      try {
        diskDirect.push((await flushedAround(() => diskWriteSeconds(tmp, bytes, true))).seconds);
      } catch {
        // the filesystem refuses O_DIRECT: the cached figure alone
      }
    }
    // Into the last round's store, which holds the whole closure, served as by a daemon on
    // another machine: it reads no file of this one's Nix store, so changed files cross the socket (as deltas).
    await daemon!.stop();
    daemon = await startDaemonProcess({ dataDir: daemonData, args: ['--data', daemonData, '--local-files', 'none'] });
    const again = await runCopy(['--store', daemon!.addr, ...paths]);
    const changed = await changedCopy(paths[0], tmp);
    const incr = await runCopy(['--store', daemon!.addr, changed.path]);
    execFileSync('nix-store', ['--delete', changed.path], { env: nixEnv(), stdio: 'ignore' });

    const floor = median(floors);
    const daemonS = median(toDaemon.map((c) => c.seconds));
    const fileS = median(toFile.map((c) => c.seconds));
    const nixS = median(nixUser);
    const nixDurableS = median(nixDurable);
    const diskC = median(diskCached);
    const diskD = diskDirect.length ? median(diskDirect) : Infinity;
    const disk = Math.min(diskC, diskD);
    const f = (s: number) => `${(s / floor).toFixed(2)}× floor`;
    const n = (s: number) => `${(s / nixDurableS).toFixed(2)}× nix copy + sync, ${(s / nixS).toFixed(2)}× nix copy`;
    const copyRss = Math.max(...toDaemon.map((c) => c.report.peakRssMiB), ...toFile.map((c) => c.report.peakRssMiB));
    const daemonRss = Math.max(...toDaemon.map((c) => c.daemonRss));
    // Every round's peak, so a reader sees which copy (→ daemon, → file:// with the store in-process) and how much they move.
    const rssRounds = `→ daemon ${toDaemon.map((c) => c.report.peakRssMiB).join(', ')} MiB; → file:// ${toFile.map((c) => c.report.peakRssMiB).join(', ')} MiB`;
    const daemonRssRounds = `${toDaemon.map((c) => c.daemonRss.toFixed(0)).join(', ')} MiB`;
    const cpu = (c: { user: number; system: number }) => `${c.user.toFixed(1)} + ${c.system.toFixed(1)} s`;
    const mid = <T extends { seconds: number }>(xs: T[]): T => [...xs].sort((a, b) => a.seconds - b.seconds)[xs.length >> 1];
    const dMid = mid(toDaemon);
    const fMid = mid(toFile);
    const gbps = (s: number) => `${(bytes / s / 1e9).toFixed(2)} GB/s`;
    const incrShare = incr.report.bytesSent / incr.report.bytesRead;
    const deltas = `${incr.report.blobsAsDeltas} of its ${changed.changed} changed files sent as deltas (${(incr.report.bytesReused / MiB).toFixed(1)} MiB taken from blobs the daemon had)`;
    const daemonMet = daemonS <= floor;
    const readByDaemon = `${dMid.report.blobsReadByStore} large files (${(dMid.report.bytesReadByStore / MiB).toFixed(0)} MiB) read by the daemon from the Nix store, ${(dMid.report.bytesSent / MiB).toFixed(0)} MiB sent`;
    const rows: [string, string, string][] = [
      ['one-pass floor (1 thread: read once, BLAKE3 + NAR SHA-256)', `${floor.toFixed(2)} s`, `1.00×; ${gbps(floor)}; ${listRounds(floors)}`],
      ['copy → daemon (grpc+unix)', `${daemonS.toFixed(2)} s`, `${f(daemonS)}; ${n(daemonS)}; ${listRounds(toDaemon.map((c) => c.seconds))}`],
      ['  CPU user + system: copy / daemon (median round)', cpu(dMid.report.cpuSeconds), cpu(dMid.daemonCpu)],
      ['  what crossed the socket (median round)', `${(dMid.report.bytesSent / MiB).toFixed(0)} MiB`, readByDaemon],
      ['copy → file:// (no daemon)', `${fileS.toFixed(2)} s`, `${f(fileS)}; ${n(fileS)}; ${listRounds(toFile.map((c) => c.seconds))}`],
      ['  CPU user + system of that copy (median round)', cpu(fMid.report.cpuSeconds), ''],
      ['nix copy --to file://…?compression=none', `${nixS.toFixed(2)} s`, `${f(nixS)}; ${listRounds(nixUser)}`],
      ['nix copy, then sync (durable)', `${nixDurableS.toFixed(2)} s`, `${f(nixDurableS)}; ${listRounds(nixDurable)}`],
      ['disk: write + fsync of the same bytes, page cache', `${diskC.toFixed(2)} s`, `${f(diskC)}; ${gbps(diskC)}; ${listRounds(diskCached)}`],
      ['disk: write + fsync of the same bytes, O_DIRECT', diskDirect.length ? `${diskD.toFixed(2)} s` : 'refused', diskDirect.length ? `${f(diskD)}; ${gbps(diskD)}; ${listRounds(diskDirect)}` : ''],
      ['re-copy (everything present)', `${again.seconds.toFixed(2)} s`, `${again.report.bytesSent} bytes sent`],
      [`5%-changed path (${changed.changed} files of ${paths[0].slice(44)})`, `${incr.seconds.toFixed(2)} s`, `${(incr.report.bytesSent / MiB).toFixed(1)} of ${(incr.report.bytesRead / MiB).toFixed(0)} MiB sent (${(incrShare * 100).toFixed(2)}%); ${deltas}; the changed files hold ${(changed.changedBytes / MiB).toFixed(1)} MiB (${((changed.changedBytes / incr.report.bytesRead) * 100).toFixed(2)}%), what whole-file deduplication alone sends`],
      ['peak RSS: copy / daemon (highest round)', `${copyRss} MiB`, `${daemonRss.toFixed(0)} MiB; copy rounds ${rssRounds}; daemon rounds ${daemonRssRounds}`],
    ];
    summary.rows.push(
      { what: 'one-pass floor: read every file once, BLAKE3 + NAR SHA-256, 1 thread', measured: `${floor.toFixed(2)} s`, compared: `1.00×, ${gbps(floor)}; ${listRounds(floors, 's', 1)}` },
      {
        what: '`copy` → daemon (`grpc+unix`)',
        measured: `${daemonS.toFixed(2)} s`,
        compared: `${f(daemonS)}; ${(daemonS / nixDurableS).toFixed(2)}× \`nix copy\` + sync; ${listRounds(toDaemon.map((c) => c.seconds), 's', 1)}`,
        target: '≤ 1.0× floor',
        met: daemonMet,
      },
      {
        what: '`copy` → daemon against `nix copy` + sync',
        measured: `${(daemonS / nixDurableS).toFixed(2)}×`,
        compared: `${(daemonS / nixS).toFixed(2)}× \`nix copy\` as a user sees it`,
        target: '≤ 0.8× (the fallback if the floor is out of reach)',
        met: daemonS <= 0.8 * nixDurableS,
      },
      { what: '  CPU user + system: copy / daemon', measured: cpu(dMid.report.cpuSeconds), compared: cpu(dMid.daemonCpu) },
      { what: '  of its blobs, sent / read by the daemon itself', measured: `${(dMid.report.bytesSent / MiB).toFixed(0)} MiB sent`, compared: readByDaemon },
      { what: '`copy` → `file://`', measured: `${fileS.toFixed(2)} s`, compared: `${f(fileS)}; ${listRounds(toFile.map((c) => c.seconds), 's', 1)}`, target: '≤ 0.9× floor', met: fileS <= 0.9 * floor },
      { what: '`nix copy --to file://…?compression=none`', measured: `${nixS.toFixed(2)} s`, compared: `${f(nixS)}; ${listRounds(nixUser, 's', 1)}` },
      { what: '`nix copy`, then `sync` (durable)', measured: `${nixDurableS.toFixed(2)} s`, compared: `${f(nixDurableS)}; ${listRounds(nixDurable, 's', 1)}` },
      { what: 'disk: write + fsync of the same bytes (faster of page cache, O_DIRECT)', measured: `${disk.toFixed(2)} s`, compared: `${f(disk)}; ${gbps(disk)}` },
      { what: 're-copy, everything present', measured: `${again.seconds.toFixed(2)} s`, compared: `${again.report.bytesSent} bytes sent`, target: '< 1 s', met: again.seconds < 1 },
      { what: 'a 5%-changed path: bytes sent (daemon with `--local-files none`, as on another machine)', measured: `${(incrShare * 100).toFixed(2)}%`, compared: `${(incr.report.bytesSent / MiB).toFixed(1)} of ${(incr.report.bytesRead / MiB).toFixed(0)} MiB; ${deltas}; the changed files (every 20th) hold ${(changed.changedBytes / MiB).toFixed(1)} MiB, what whole-file deduplication alone sends`, target: '< 2%', met: incrShare < 0.02 },
      { what: 'peak RSS of the copy', measured: `${copyRss} MiB`, compared: `highest round; ${rssRounds}`, target: '< 300 MiB', met: copyRss < 300 },
      { what: 'peak RSS of the daemon', measured: `${daemonRss.toFixed(0)} MiB`, compared: `highest round; rounds ${daemonRssRounds}`, target: '< 200 MiB', met: daemonRss < 200 },
    );
    return [
      `Copy of a real-files closure: ${paths.length} paths, ${files} files, ${(bytes / GiB).toFixed(2)} GiB (${paths.join(' ')}).`,
      `Medians of ${ROUNDS} interleaved rounds, each contender between untimed syncs, each copy into an empty store:`,
      table(rows),
      `copy → daemon ≤ 1.0× floor: ${verdict(daemonMet)}; ≤ 0.8× nix copy + sync: ${verdict(daemonS <= 0.8 * nixDurableS)}; copy → file:// ≤ 0.9× floor: ${verdict(fileS <= 0.9 * floor)}`,
    ].join('\n');
  } finally {
    await daemon?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}
