// Garbage collection of a store holding the real-files closure plus as much
// garbage (old paths of other bytes, mirroring the closure's file sizes):
// its time against a cold copy of the same closure, the bytes it reclaims,
// its peak RSS, and how much slower a copy runs beside it.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, readdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, dirname } from 'node:path';
import { CLI, CLI_NODE_FLAGS } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { realFilesClosure } from './copy-closure.js';
import { fileCount } from './closure-data.js';
import { GiB, MiB, pseudoRandomChunks, summary, table, type SummaryRow } from './util.js';
import { ROUNDS, flushedAround, listRounds, median, verdict } from './rounds.js';

function run(args: string[], env: NodeJS.ProcessEnv = nixEnv()): Promise<{ seconds: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [...CLI_NODE_FLAGS, CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${args[0]} exited ${code}: ${err}`));
      resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, out });
    });
  });
}

async function files(p: string, out: { path: string; size: number }[] = []): Promise<{ path: string; size: number }[]> {
  const st = await lstat(p);
  if (st.isDirectory()) for (const e of (await readdir(p)).sort()) await files(join(p, e), out);
  else if (st.isFile()) out.push({ path: p, size: st.size });
  return out;
}

/** A tree with the closure's file sizes and other bytes, added to the Nix store. */
async function garbageLike(paths: string[], tmp: string): Promise<string> {
  const dir = join(tmp, 'garbage');
  let n = 0;
  for (const p of paths) {
    for (const f of await files(p)) {
      const to = join(dir, relative('/nix/store', f.path));
      await mkdir(dirname(to), { recursive: true });
      const parts = [...pseudoRandomChunks(f.size)];
      const bytes = Buffer.concat(parts);
      if (bytes.length >= 8) bytes.writeUInt32LE(n++, 4); // every file differs
      await writeFile(to, bytes);
    }
  }
  const path = execFileSync('nix-store', ['--add', dir], { encoding: 'utf8', env: nixEnv(), stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  await rm(dir, { recursive: true, force: true });
  return path;
}

interface GcJson {
  bytes: { reclaimed: number; before: number; after: number };
  blobs: { deleted: number };
  directories: { deleted: number };
  packs: { rewritten: number };
  peakRssMiB: number;
  memory?: { spilled: boolean };
}

export async function gcBench(target = GiB): Promise<string> {
  const { paths } = realFilesClosure(target);
  const tmp = await mkdtemp(join(tmpdir(), 'bench-gc-'));
  const garbage = await garbageLike(paths, tmp);
  const clock = join(tmp, 'clock');
  await writeFile(clock, String(Date.now() - 60 * 86_400_000));
  const oldEnv = { ...nixEnv(), NIX_CASTORE_CLOCK_FILE: clock };
  const gcArgs = (store: string) => ['gc', '--store', store, '--keep-since', '30d', '--grace', '0', '--json'];
  try {
    const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
    const cold: number[] = [];
    const gc: number[] = [];
    const beside: number[] = [];
    const gcBesideS: number[] = [];
    let report: GcJson | undefined;
    let peakRss = 0;
    let spilled = false;
    // Interleaved rounds, each into fresh stores, dirty pages flushed around each contender.
    for (let r = 0; r < ROUNDS; r++) {
      // A cold copy of the closure, into an empty store: the reference.
      cold.push((await flushedAround(() => run(['copy', '--quiet', '--store', `file://${join(tmp, `cold-${r}`)}`, ...paths]))).seconds);
      // The store to collect: garbage pushed 60 days ago, the closure now.
      const store = `file://${join(tmp, `store-${r}`)}`;
      await run(['copy', '--quiet', '--store', store, garbage], oldEnv);
      await run(['copy', '--quiet', '--store', store, ...paths]);
      const g = await flushedAround(() => run(gcArgs(store)));
      gc.push(g.seconds);
      report = JSON.parse(g.value.out) as GcJson;
      peakRss = Math.max(peakRss, report.peakRssMiB);
      spilled ||= !!report.memory?.spilled;
      // A copy beside a collection: garbage to collect, the closure copied cold meanwhile.
      const b = `file://${join(tmp, `beside-${r}`)}`;
      await run(['copy', '--quiet', '--store', b, garbage], oldEnv);
      const both = await flushedAround(() => Promise.all([run(['copy', '--quiet', '--store', b, ...paths]), run(gcArgs(b))]));
      beside.push(both.value[0].seconds);
      gcBesideS.push(both.value[1].seconds);
      const besideReport = JSON.parse(both.value[1].out) as GcJson;
      peakRss = Math.max(peakRss, besideReport.peakRssMiB);
      spilled ||= !!besideReport.memory?.spilled;
      await rm(join(tmp, `cold-${r}`), { recursive: true, force: true });
      await rm(join(tmp, `store-${r}`), { recursive: true, force: true });
      await rm(join(tmp, `beside-${r}`), { recursive: true, force: true });
    }
    const [c, g, b] = [median(cold), median(gc), median(beside)];
    const rep = report!;
    const rows: SummaryRow[] = [
      { what: 'gc of closure + as much garbage (file://)', measured: `${g.toFixed(2)} s`, compared: `${(g / c).toFixed(2)}× a cold copy of the closure (${c.toFixed(2)} s); ${listRounds(gc)}`, target: '≤ 1× the copy', met: g <= c },
      { what: '  space reclaimed (du before → after)', measured: mib(rep.bytes.reclaimed), compared: `${mib(rep.bytes.before)} → ${mib(rep.bytes.after)}; ${rep.blobs.deleted} blobs, ${rep.directories.deleted} directories, ${rep.packs.rewritten} packs rewritten` },
      { what: '  peak RSS of the collector', measured: `${peakRss} MiB`, compared: `the largest of all its runs (alone and beside a copy); default --memory ${spilled ? '(marks spilled to disk)' : '(marks held in memory)'}`, target: '< 300 MiB', met: peakRss < 300 },
      { what: 'copy beside a gc', measured: `${b.toFixed(2)} s`, compared: `${(b / c).toFixed(2)}× the cold copy; ${listRounds(beside)}; the gc took ${median(gcBesideS).toFixed(2)} s`, target: '≤ 1.5× slower', met: b <= 1.5 * c },
    ];
    summary.rows.push(...rows);
    const files = fileCount(paths);
    return [
      `Garbage collection: ${paths.length} closure paths (${files} files) and one garbage path of the same file sizes, so about ${2 * files} files in the store (medians of ${ROUNDS} rounds):`,
      table(rows.map((r) => [r.what, r.measured, r.compared + (r.target ? ` (target ${r.target}: ${verdict(!!r.met)})` : '')])),
    ].join('\n');
  } finally {
    execFileSync('nix-store', ['--delete', garbage], { env: nixEnv(), stdio: 'ignore' });
    await rm(tmp, { recursive: true, force: true });
  }
}
