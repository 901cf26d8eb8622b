// Garbage collection of a store holding the real-files closure plus as much
// garbage (old paths of other bytes, mirroring the closure's file sizes):
// its time against a cold copy of the same closure, the bytes it reclaims,
// its peak RSS, and how much slower a copy runs beside it.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, readdir, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, dirname } from 'node:path';
import { CLI } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { realFilesClosure } from './copy-closure.js';
import { GiB, MiB, pseudoRandomChunks, summary, table } from './util.js';

function run(args: string[], env: NodeJS.ProcessEnv = nixEnv()): Promise<{ seconds: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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

export async function gcBench(target = GiB): Promise<string> {
  const { paths } = realFilesClosure(target);
  const tmp = await mkdtemp(join(tmpdir(), 'bench-gc-'));
  const garbage = await garbageLike(paths, tmp);
  const clock = join(tmp, 'clock');
  await writeFile(clock, String(Date.now() - 60 * 86_400_000));
  const oldEnv = { ...nixEnv(), NIX_CASTORE_CLOCK_FILE: clock };
  const gcArgs = (store: string) => ['gc', '--store', store, '--keep-since', '30d', '--grace', '0', '--json'];
  try {
    // A cold copy of the closure, into an empty store: the reference.
    const cold = await run(['copy', '--quiet', '--store', `file://${join(tmp, 'cold')}`, ...paths]);
    // The store to collect: garbage pushed 60 days ago, the closure now.
    const store = `file://${join(tmp, 'store')}`;
    await run(['copy', '--quiet', '--store', store, garbage], oldEnv);
    await run(['copy', '--quiet', '--store', store, ...paths]);
    const gc = await run(gcArgs(store));
    const report = JSON.parse(gc.out);
    // A copy beside a collection: garbage to collect, the closure copied cold meanwhile.
    const beside = `file://${join(tmp, 'beside')}`;
    await run(['copy', '--quiet', '--store', beside, garbage], oldEnv);
    const [copyBeside, gcBeside] = await Promise.all([run(['copy', '--quiet', '--store', beside, ...paths]), run(gcArgs(beside))]);
    const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
    const rows: [string, string, string][] = [
      ['gc of closure + as much garbage (file://)', `${gc.seconds.toFixed(2)} s`, `${(gc.seconds / cold.seconds).toFixed(2)}× a cold copy of the closure (${cold.seconds.toFixed(2)} s; target ≤ 1×)`],
      ['  space reclaimed (du before → after)', mib(report.bytes.reclaimed), `${mib(report.bytes.before)} → ${mib(report.bytes.after)}; ${report.blobs.deleted} blobs, ${report.directories.deleted} directories, ${report.packs.rewritten} packs rewritten`],
      ['  peak RSS of the collector', `${report.peakRssMiB} MiB`, 'target < 300 MiB'],
      ['copy beside a gc', `${copyBeside.seconds.toFixed(2)} s`, `${(copyBeside.seconds / cold.seconds).toFixed(2)}× the cold copy (target ≤ 1.5×); the gc took ${gcBeside.seconds.toFixed(2)} s`],
    ];
    summary.rows.push(...rows);
    return [`Garbage collection: ${paths.length} closure paths and one garbage path of the same file sizes:`, table(rows)].join('\n');
  } finally {
    execFileSync('nix-store', ['--delete', garbage], { env: nixEnv(), stdio: 'ignore' });
    await rm(tmp, { recursive: true, force: true });
  }
}
