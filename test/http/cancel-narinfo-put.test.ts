// A narinfo PUT publishes its path only after checking that everything
// the path's root refers to is in the store: for a path of tens of
// thousands of directories, seconds of work from a request of a few
// hundred bytes. Over HTTP as over gRPC (server/cancel-pathinfo-put), a
// client that goes away must stop that work, and nothing may be published
// for it. The NAR and narinfo are what Nix 2.8 writes (`nix copy --to
// file://…?compression=none`) of a path built by Nix.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { cpuDuring, cpuTicks } from '../helpers/proc-usage.js';
import { cacheUrlOf, request } from './http-helpers.js';

const TOKEN = 'cancel-narinfo-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
/** Directories in the path: each is read and checked once when its narinfo is published. */
const WIDTH = 30_000;

let tmp: string;
let daemon: DaemonProcess;
let url: string;
let hash: string;
let narinfo: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'cancel-narinfo-'));
  const file = join(tmp, 'wide.nix');
  await writeFile(
    file,
    `builtins.derivation { name = "wide-${process.pid}-${Date.now()}"; system = builtins.currentSystem; builder = "/usr/bin/node";
      args = [ "-e" "const fs = require('fs'); const out = process.env.out; fs.mkdirSync(out); for (let i = 0; i < ${WIDTH}; i++) { fs.mkdirSync(out + '/' + i); fs.symlinkSync(String(i), out + '/' + i + '/s'); }" ]; }`,
  );
  const out = (await runNix('nix-build', [file, '--no-out-link'])).stdout.toString().trim();
  const nixCache = join(tmp, 'nix-cache');
  await runNix('nix', ['copy', '--to', `file://${nixCache}?compression=none`, out]);
  hash = out.slice(11, 43);
  narinfo = await readFile(join(nixCache, `${hash}.narinfo`), 'utf8');
  const narUrl = /^URL: (.*)$/m.exec(narinfo)![1];
  const tokenFile = join(tmp, 'token');
  await writeFile(tokenFile, TOKEN);
  daemon = await startDaemonProcess({ args: ['--data', join(tmp, 'data'), '--http', '127.0.0.1:0', '--auth-token-file', tokenFile] });
  url = await cacheUrlOf(daemon);
  const nar = await request(url, `/${narUrl}`, 'PUT', AUTH, await readFile(join(nixCache, narUrl)));
  assert.equal(nar.status, 200, nar.body.toString());
});

after(async () => {
  await daemon?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Sends the narinfo PUT whole on a connection of its own, which the caller may destroy. */
function sendNarInfo(): net.Socket {
  const u = new URL(url);
  const body = Buffer.from(narinfo);
  const s = net.connect(Number(u.port), u.hostname);
  s.on('error', () => {});
  s.write(`PUT /${hash}.narinfo HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${body.length}\r\n\r\n`);
  s.write(body);
  return s;
}

it('a narinfo PUT whose client goes away stops checking the path and publishes nothing; the same PUT kept is published', async () => {
  const pid = daemon.child.pid!;
  const start = cpuTicks(pid);
  const sockets = Array.from({ length: 4 }, sendNarInfo);
  // Once the daemon is busy checking (half a second of CPU), every client goes away.
  while (cpuTicks(pid) - start < 50) await sleep(20);
  for (const s of sockets) s.destroy();
  await sleep(500); // the closes reach the daemon
  const spent = (await cpuDuring(pid, 3000)) / 100;
  assert.ok(spent < 0.5, `the daemon used ${spent.toFixed(2)} s of CPU in the 3 s after every client left`);
  assert.equal((await request(url, `/${hash}.narinfo`, 'GET', AUTH)).status, 404, 'nothing published for a PUT whose client left');
  // Logged (and counted) as the client's doing, not as a server error.
  const lines = daemon.stderr().split('\n').filter((l) => l.includes(`PUT /${hash}.narinfo`));
  assert.equal(lines.length, 4, daemon.stderr());
  for (const l of lines) assert.match(l, / 499 0 .*\(the client went away before the path was published: nothing was published\)$/);

  const kept = await request(url, `/${hash}.narinfo`, 'PUT', AUTH, Buffer.from(narinfo));
  assert.equal(kept.status, 200, kept.body.toString());
  assert.equal((await request(url, `/${hash}.narinfo`, 'GET', AUTH)).status, 200);
  assert.equal(daemon.child.exitCode, null);
});
