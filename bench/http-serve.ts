// Serving Nix over HTTP: how fast the daemon's binary cache streams a big
// NAR (rendered from the castore) compared with `nix-store --dump` of the
// same path read by the same kind of consumer, and how many narinfo
// requests per second it answers (signed on the fly).
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, CLI, CLI_NODE_FLAGS } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { formatSecretKey, generateSecretKey } from '../src/nix/signature.js';
import { GiB, MiB, peakRssMiB, pseudoRandomChunks, rate, summary, table, timed } from './util.js';
import { ROUNDS, flushedAround, listRounds, median } from './rounds.js';

const MIN_SIZE = 512 * MiB;
const NARINFO_REQUESTS = 5000;
const NARINFO_CONCURRENCY = 32;

/** Reads a stream to its end, returning the byte count. */
async function drain(stream: NodeJS.ReadableStream): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += (chunk as Buffer).length;
  return n;
}

function dumpBytes(path: string): Promise<number> {
  const child = spawn('nix-store', ['--dump', path], { env: nixEnv(), stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'close');
  return drain(child.stdout).then(async (n) => {
    const [code] = await exited;
    if (code !== 0) throw new Error(`nix-store --dump exited ${code}`);
    return n;
  });
}

function get(agent: http.Agent, url: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/**
 * GETs `url` over a bare TCP socket and counts the body bytes: a consumer
 * as cheap as the pipe reader of the reference (Node's HTTP client would
 * be the bottleneck at ~1.5 GB/s here, not the server).
 */
function rawGetCount(url: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () =>
      s.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`),
    );
    let head: Buffer | undefined = Buffer.alloc(0);
    let status = 0;
    let contentLength = -1;
    let body = 0;
    s.on('data', (d: Buffer) => {
      if (head === undefined) {
        body += d.length;
        return;
      }
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = head.subarray(0, end).toString('latin1');
      status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0);
      contentLength = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? -1);
      body = head.length - end - 4;
      head = undefined;
    });
    s.on('end', () => {
      if (status !== 200 || body !== contentLength) reject(new Error(`GET ${url}: status ${status}, ${body} of ${contentLength} bytes`));
      else resolve(body);
    });
    s.on('error', reject);
  });
}

/** A store path holding one file of `size` pseudo-random bytes (nix-store --add). */
async function bigStorePath(dir: string, size: number): Promise<string> {
  const file = join(dir, `nix-castore-bench-http-${size}`);
  const out = createWriteStream(file);
  for (const chunk of pseudoRandomChunks(size)) if (!out.write(chunk)) await once(out, 'drain');
  out.end();
  await once(out, 'close');
  const path = execFileSync('nix-store', ['--add', file], { encoding: 'utf8', env: nixEnv() }).trim();
  await rm(file, { force: true });
  return path;
}

export async function httpServeBench(requested = GiB): Promise<string> {
  const size = Math.max(requested, process.env.BENCH_SIZE_MIB ? 0 : MIN_SIZE);
  const tmp = await mkdtemp(join(tmpdir(), 'bench-http-serve-'));
  const path = await bigStorePath(tmp, size);
  const keyFile = join(tmp, 'cache.key');
  await writeFile(keyFile, formatSecretKey(generateSecretKey('bench-cache-1')), { mode: 0o600 });
  const daemon = await startDaemonProcess({ args: ['--data', join(tmp, 'data'), '--http', '127.0.0.1:0', '--sign-key-file', keyFile, '--compression', 'none'] });
  try {
    let url: string | undefined;
    for (let i = 0; i < 200 && !url; i++) {
      url = /Nix binary cache on (http:\/\/\S+)/.exec(daemon.stderr())?.[1];
      if (!url) await new Promise((r) => setTimeout(r, 25));
    }
    if (!url) throw new Error(`no cache URL from the daemon:\n${daemon.stderr()}`);
    execFileSync(process.execPath, [...CLI_NODE_FLAGS, CLI, 'copy', '--quiet', '--store', daemon.addr, path], { env: nixEnv(), stdio: 'inherit' });

    const hash = path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    const agent = new http.Agent({ keepAlive: true, maxSockets: NARINFO_CONCURRENCY });
    const narinfo = await get(agent, `${url}/${hash}.narinfo`);
    const narUrl = `${url}/${/^URL: (.*)$/m.exec(narinfo.body.toString())![1]}`;

    // Warm both sides' page caches, then interleaved rounds, medians.
    const bytes = await dumpBytes(path);
    await rawGetCount(narUrl);
    const dumpRounds: number[] = [];
    const serveRounds: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const d = await flushedAround(() => dumpBytes(path));
      const g = await flushedAround(() => rawGetCount(narUrl));
      if (g.value !== bytes || d.value !== bytes) throw new Error(`HTTP NAR is ${g.value} bytes, nix-store --dump gave ${d.value}`);
      dumpRounds.push(d.seconds);
      serveRounds.push(g.seconds);
    }
    const dump = { seconds: median(dumpRounds), value: bytes };
    const serve = { seconds: median(serveRounds), value: bytes };
    const rss = peakRssMiB(daemon.child.pid!);

    let next = 0;
    let failures = 0;
    const worker = async () => {
      while (next++ < NARINFO_REQUESTS) if ((await get(agent, `${url}/${hash}.narinfo`)).status !== 200) failures++;
    };
    const q = await timed(() => Promise.all(Array.from({ length: NARINFO_CONCURRENCY }, worker)));
    agent.destroy();
    if (failures > 0) throw new Error(`${failures} narinfo requests failed`);

    const ratio = dump.seconds / serve.seconds;
    summary.rows.push(
      { what: `NAR serving over HTTP, one ${(size / GiB).toFixed(2)} GiB path`, measured: rate(serve.value, serve.seconds), compared: `${ratio.toFixed(2)}× \`nix-store --dump\` (medians of ${ROUNDS})` },
      { what: 'narinfo requests, signed', measured: `${Math.round(NARINFO_REQUESTS / q.seconds)} req/s`, compared: '' },
    );
    return [
      `Serving Nix over HTTP: uncompressed NAR of a ${(size / GiB).toFixed(2)} GiB single-file store path (file:// store in the daemon, loopback TCP, --compression none; medians of ${ROUNDS} interleaved rounds):`,
      table([
        ['nix-store --dump → pipe (reference)', rate(dump.value, dump.seconds), `1.00× (${listRounds(dumpRounds)})`],
        ['GET nar/…nar from the daemon', rate(serve.value, serve.seconds), `${ratio.toFixed(2)}× nix-store --dump (${listRounds(serveRounds)})`],
        [
          `GET <hash>.narinfo, signed (${NARINFO_CONCURRENCY} keep-alive connections)`,
          `${Math.round(NARINFO_REQUESTS / q.seconds)} req/s`,
          `${NARINFO_REQUESTS} requests in ${q.seconds.toFixed(2)} s`,
        ],
        ['daemon peak RSS', `${rss.toFixed(0)} MiB`, ''],
      ]),
    ].join('\n');
  } finally {
    await daemon.stop();
    await rm(tmp, { recursive: true, force: true });
    try {
      execFileSync('nix-store', ['--delete', path], { env: nixEnv(), stdio: 'ignore' });
    } catch {
      // still alive somehow: leave it to the garbage collector
    }
  }
}
