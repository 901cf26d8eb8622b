// The binary cache both ways, on the real-files closure (copy-closure.ts):
// `nix copy --to http://castore` against `nix copy --to file://` with the
// same compression (zstd), the daemon's zstd NAR serving against
// `nix-store --dump | zstd -3`, and `nix-castore import` of the file://
// cache Nix wrote. Each figure is the median of BENCH_ROUNDS (default 3)
// interleaved rounds, dirty pages flushed around each contender.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, CLI, CLI_NODE_FLAGS, type DaemonProcess } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { realFilesClosure } from './copy-closure.js';
import { GiB, MiB, peakRssMiB, rate, summary, table } from './util.js';
import { ROUNDS, flushedAround, listRounds, median } from './rounds.js';

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = nixEnv()): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))));
  });
}

async function cacheUrl(d: DaemonProcess): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const m = /Nix binary cache on (http:\/\/\S+)/.exec(d.stderr());
    if (m) return m[1];
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no cache URL from the daemon:\n${d.stderr()}`);
}

/** Body bytes of a GET over a bare socket (chunked responses counted with their framing, a few bytes per MiB). */
function rawGet(url: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`));
    let n = 0;
    let status = '';
    s.on('data', (d: Buffer) => {
      if (!status) status = d.subarray(0, 12).toString('latin1');
      n += d.length;
    });
    s.on('end', () => (status.includes(' 200') ? resolve(n) : reject(new Error(`GET ${url}: ${status}`))));
    s.on('error', reject);
  });
}

export async function httpCacheBench(size = GiB): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'bench-http-cache-'));
  const { paths, bytes } = realFilesClosure(size);
  const narBytes = paths.reduce((s, p) => s + Number(execFileSync('nix-store', ['-q', '--size', p], { encoding: 'utf8', env: nixEnv() })), 0);
  const daemons: DaemonProcess[] = [];
  try {
    let round = 0;
    let daemonRss = 0;
    const toDaemon = async () => {
      const d = await startDaemonProcess({ args: ['--data', join(tmp, `data-${round}`), '--http', '127.0.0.1:0'] });
      daemons.push(d);
      const url = await cacheUrl(d);
      const t = await flushedAround(() => run('nix', ['copy', '--to', `${url}?compression=zstd`, ...paths], nixEnv([], { XDG_CACHE_HOME: join(tmp, `xdg-${round}`) })));
      daemonRss = Math.max(daemonRss, peakRssMiB(d.child.pid!));
      await d.stop();
      return t.seconds;
    };
    const toFile = async () => {
      const t = await flushedAround(() => run('nix', ['copy', '--to', `file://${join(tmp, `file-cache-${round}`)}?compression=zstd`, ...paths], nixEnv([], { XDG_CACHE_HOME: join(tmp, `xdg-f-${round}`) })));
      return t.seconds;
    };
    const httpRounds: number[] = [];
    const fileRounds: number[] = [];
    for (round = 0; round < ROUNDS; round++) {
      httpRounds.push(await toDaemon());
      fileRounds.push(await toFile());
    }
    const httpBest = median(httpRounds);
    const fileBest = median(fileRounds);

    // Serving: the largest path of the closure, from a daemon holding it all.
    const served = await startDaemonProcess({ args: ['--data', join(tmp, 'data-0'), '--http', '127.0.0.1:0'] });
    daemons.push(served);
    const url = await cacheUrl(served);
    const largest = paths
      .map((p) => ({ p, n: Number(execFileSync('nix-store', ['-q', '--size', p], { encoding: 'utf8', env: nixEnv() })) }))
      .sort((a, b) => b.n - a.n)[0];
    const hash = largest.p.slice(11, 43);
    const narinfo = execFileSync('curl', ['-sf', `${url}/${hash}.narinfo`], { encoding: 'utf8' });
    const narUrl = `${url}/${/^URL: (.*)$/m.exec(narinfo)![1]}`;
    await rawGet(narUrl); // warm
    const serveRounds: number[] = [];
    const cliRounds: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      serveRounds.push((await flushedAround(() => rawGet(narUrl))).seconds);
      cliRounds.push((await flushedAround(() => run('bash', ['-c', 'set -o pipefail; nix-store --dump "$1" | zstd -3 -q -c > /dev/null', 'bash', largest.p]))).seconds);
    }
    const serve = median(serveRounds);
    const cli = median(cliRounds);
    const serveRss = peakRssMiB(served.child.pid!);

    // Import of the cache Nix wrote (zstd) into an empty store.
    const importRounds: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t = await flushedAround(() => run(process.execPath, [...CLI_NODE_FLAGS, CLI, 'import', '--quiet', '--store', `file://${join(tmp, `imported-${i}`)}`, `file://${join(tmp, 'file-cache-0')}`]));
      importRounds.push(t.seconds);
    }
    const importBest = median(importRounds);

    summary.rows.push({ what: 'nix copy --to http://castore (zstd)', measured: `${httpBest.toFixed(2)} s`, compared: `${(httpBest / fileBest).toFixed(2)}× nix copy --to file:// (${fileBest.toFixed(2)} s); ${listRounds(httpRounds)}` });
    summary.rows.push({ what: 'zstd NAR serving', measured: rate(largest.n, serve), compared: `${(serve / cli).toFixed(2)}× the time of nix-store --dump | zstd -3 (${rate(largest.n, cli)})` });
    summary.rows.push({ what: 'import of a zstd file:// cache', measured: rate(narBytes, importBest), compared: `${importBest.toFixed(2)} s for ${paths.length} paths; ${listRounds(importRounds)}` });
    return [
      `The binary cache both ways: the real-files closure, ${paths.length} paths, ${(bytes / MiB).toFixed(0)} MiB of files, ${(narBytes / MiB).toFixed(0)} MiB of NAR (medians of ${ROUNDS} rounds):`,
      table([
        ['nix copy --to file://…?compression=zstd (reference)', `${fileBest.toFixed(2)} s`, '1.00×'],
        ['nix copy --to http://castore?compression=zstd', `${httpBest.toFixed(2)} s`, `${(httpBest / fileBest).toFixed(2)}×; daemon peak RSS ${daemonRss.toFixed(0)} MiB`],
        [`nix-store --dump | zstd -3, ${(largest.n / MiB).toFixed(0)} MiB path (reference)`, rate(largest.n, cli), `1.00× (${cli.toFixed(2)} s)`],
        ['GET nar/…nar.zst from the daemon', rate(largest.n, serve), `${(serve / cli).toFixed(2)}× the time (${serve.toFixed(2)} s); daemon peak RSS ${serveRss.toFixed(0)} MiB`],
        ['nix-castore import of the zstd file:// cache', rate(narBytes, importBest), `${importBest.toFixed(2)} s for ${paths.length} paths`],
      ]),
    ].join('\n');
  } finally {
    for (const d of daemons) await d.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

// Run alone: `node dist/bench/http-cache.js` (BENCH_SIZE_MIB for the size).
if (import.meta.url === `file://${process.argv[1]}`) {
  const size = process.env.BENCH_SIZE_MIB ? Number(process.env.BENCH_SIZE_MIB) * MiB : GiB;
  httpCacheBench(size).then(
    (out) => console.log(out),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
