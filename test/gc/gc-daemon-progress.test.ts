// `gc` against a real daemon prints the collector's phase lines on stderr
// as a local gc does (AdminService.CollectGarbageWithProgress), and none
// with --json; the daemon still logs them. The streaming method is a write
// like CollectGarbage: the token is needed, a --read-only daemon refuses it
// and nothing is collected.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CLI, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { spawn } from 'node:child_process';
import { runCli } from '../copy/run-cli.js';
import { nixEnv } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { CollectGarbageEventCodec, CollectGarbageRequestCodec, type CollectGarbageEvent } from '../../src/grpc/admin-messages.js';
import type { GcReport } from '../../src/gc/report.js';
import { putPath } from './reference-paths.js';

const A = `/nix/store/${'a'.repeat(32)}-gc-progress-a`;
const B = `/nix/store/${'b'.repeat(32)}-gc-progress-b`;
const PHASES = ['gc: reading pins and PathInfos', 'gc: marking from 0 kept paths', 'gc: deciding what goes', 'gc: deleting'];
/** A line of its own, as the CLI prints it (the daemon's log puts its name first). */
const line = (text: string, prefix = ''): RegExp => new RegExp(`^${prefix}${text}$`, 'm');

interface RawOutcome {
  events: CollectGarbageEvent[];
  code: number;
  details: string;
}

/** Calls CollectGarbageWithProgress by its path with plain grpc-js, with or without a token. */
function collectWithProgress(socket: string, token?: string): Promise<RawOutcome> {
  const client = new grpc.Client(`unix:${socket}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  const req = { keepSince: '0', maxSize: '', grace: '0', dryRun: false, memory: '' };
  const call = client.makeServerStreamRequest('/nixcastore.v1.AdminService/CollectGarbageWithProgress', CollectGarbageRequestCodec.encode, (b: Buffer) => b, req, metadata);
  const events: CollectGarbageEvent[] = [];
  call.on('data', (b: Buffer) => events.push(CollectGarbageEventCodec.decode(b)));
  call.on('error', () => {}); // the status below says it all
  return new Promise((resolve) =>
    call.on('status', (st: grpc.StatusObject) => {
      client.close();
      resolve({ events, code: st.code, details: st.details });
    }),
  );
}

/** A preload that makes the daemon's collector take `ms` to list the pins (a large store's slow phase). */
async function slowPins(dir: string, ms: number): Promise<string> {
  const preload = join(dir, 'slow-pins.cjs');
  await writeFile(
    preload,
    `const fsp = require('node:fs/promises');
const readdir = fsp.readdir;
fsp.readdir = async function (dir, ...rest) {
  if (String(dir).endsWith('/pins')) await new Promise((r) => setTimeout(r, ${ms}));
  return readdir.call(this, dir, ...rest);
};
require('node:module').syncBuiltinESMExports();
`,
  );
  return preload;
}

/** Stores path A through the daemon, to be collected. */
async function pushA(d: DaemonProcess): Promise<void> {
  const remote = openStore(sameAddr(d.addr));
  try {
    await putPath(remote, A, 'a\n', []);
  } finally {
    await remote.close();
  }
}

describe('gc through a daemon shows its progress', () => {
  const daemons: DaemonProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const d of daemons) await d.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const daemon = async (args: string[]) => {
    const d = await startDaemonProcess({ args });
    daemons.push(d);
    return d;
  };

  it('prints the phase lines on stderr, none with --json, and the daemon logs them too', async () => {
    const data = await mkdtemp(join(tmpdir(), 'gc-progress-'));
    dirs.push(data);
    const d = await daemon(['--data', data]);
    await pushA(d);
    const quiet = await runCli(['gc', '--store', d.addr, '--keep-since', '0', '--grace', '0', '--dry-run', '--json']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.deepEqual((JSON.parse(quiet.stdout) as GcReport).deleted, [A.slice(11)]);
    assert.doesNotMatch(quiet.stderr, /^gc: /m, 'no phase lines with --json');

    const gc = await runCli(['gc', '--store', d.addr, '--keep-since', '0', '--grace', '0']);
    assert.equal(gc.code, 0, gc.stderr);
    for (const phase of PHASES) assert.match(gc.stderr, line(phase));
    assert.match(gc.stdout, new RegExp(`^deleted ${A}$`, 'm'));
    assert.match(gc.stdout, /^gc: store used .* reclaimed in /m);
    for (const phase of PHASES) assert.match(d.stderr(), line(phase, 'nix-castore daemon: '), 'the daemon logs them as before');
  });

  it('a collection longer than the daemon\'s --idle-timeout with no line in between is not cut off: a connection with a call in flight is not idle', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'gc-progress-idle-'));
    dirs.push(tmp);
    // The daemon's collector takes 4 s to list the pins (a large store's slow phase), with --idle-timeout 2.
    const preload = await slowPins(tmp, 4000);
    const d = await startDaemonProcess({ args: ['--data', join(tmp, 'data'), '--idle-timeout', '2'], nodeArgs: ['--require', preload] });
    daemons.push(d);
    await pushA(d);
    const gc = await runCli(['gc', '--store', d.addr, '--keep-since', '0', '--grace', '0'], { env: { ...nixEnv(), NIX_CASTORE_PING_MS: '500' } });
    assert.equal(gc.code, 0, gc.stderr + d.stderr());
    assert.match(gc.stdout, new RegExp(`^deleted ${A}$`, 'm'));
  });

  it('a daemon that stops answering during a collection (SIGSTOP) fails the gc, instead of holding it for ever', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'gc-progress-stop-'));
    dirs.push(tmp);
    const d = await startDaemonProcess({ args: ['--data', join(tmp, 'data')], nodeArgs: ['--require', await slowPins(tmp, 8000)] });
    daemons.push(d);
    await pushA(d);
    const gc = spawn(process.execPath, [CLI, 'gc', '--store', d.addr, '--keep-since', '0', '--grace', '0'], { env: { ...nixEnv(), NIX_CASTORE_PING_MS: '500' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    gc.stderr!.on('data', (b) => (stderr += b));
    const exited = new Promise<number | null>((r) => gc.once('exit', (code) => r(code)));
    // Not a timing assertion: a client that waits for ever is stopped here so the test ends.
    const guard = setTimeout(() => gc.kill('SIGKILL'), 60_000);
    try {
      for (let i = 0; i < 600 && !/gc: reading pins/.test(stderr); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(stderr, /gc: reading pins/, 'the collection is under way');
      d.child.kill('SIGSTOP');
      const code = await exited;
      assert.equal(code, 1, `the gc ends with an error, not killed by the guard: ${stderr}`);
      assert.match(stderr, /UNAVAILABLE/);
    } finally {
      clearTimeout(guard);
      d.child.kill('SIGCONT');
    }
  });

  it('needs the token, and a --read-only daemon refuses it (nothing collected)', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'gc-progress-auth-'));
    dirs.push(tmp);
    const data = join(tmp, 'data');
    const tokenFile = join(tmp, 'token');
    await writeFile(tokenFile, 'sekrit-token\n');
    const store = openStore(sameAddr(fileAddr(data)));
    try {
      await putPath(store, A, 'a\n', []);
      await putPath(store, B, 'b\n', []);
    } finally {
      await store.close();
    }
    /** Asked of the daemon: reads need no token. */
    const present = async (d: DaemonProcess, p: string) => {
      const remote = openStore(sameAddr(d.addr));
      try {
        return (await remote.pathInfos.get(parseAbsolute(p).digest)) !== undefined;
      } finally {
        await remote.close();
      }
    };

    const ro = await daemon(['--data', data, '--read-only']);
    const refused = await collectWithProgress(ro.socket);
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED, refused.details);
    assert.match(refused.details, /read-only/);
    assert.deepEqual(refused.events, []);
    const cliRefused = await runCli(['gc', '--store', ro.addr, '--keep-since', '0', '--grace', '0']);
    assert.equal(cliRefused.code, 1);
    assert.match(cliRefused.stderr, /PERMISSION_DENIED: the daemon is read-only/);
    assert.ok(await present(ro, A), 'nothing collected');
    await ro.stop();

    const locked = await daemon(['--data', data, '--auth-token-file', tokenFile]);
    for (const token of [undefined, 'wrong-token']) {
      const anon = await collectWithProgress(locked.socket, token);
      assert.equal(anon.code, grpc.status.UNAUTHENTICATED, anon.details);
      assert.deepEqual(anon.events, []);
    }
    const cliAnon = await runCli(['gc', '--store', locked.addr, '--keep-since', '0', '--grace', '0']);
    assert.equal(cliAnon.code, 1);
    assert.match(cliAnon.stderr, /UNAUTHENTICATED: writes need an authorization: Bearer <token> header/);
    assert.ok(await present(locked, A), 'nothing collected');

    const done = await collectWithProgress(locked.socket, 'sekrit-token');
    assert.equal(done.code, grpc.status.OK, done.details);
    const last = done.events.at(-1)!;
    assert.ok('reportJson' in last, 'the report comes last');
    assert.deepEqual((JSON.parse(last.reportJson) as GcReport).deleted, [A, B].map((p) => p.slice(11)).sort());
    const logged = done.events.slice(0, -1).map((e) => ('log' in e ? e.log : '(a report too early)'));
    for (const phase of PHASES) assert.ok(logged.includes(phase), `${phase} in ${JSON.stringify(logged)}`);
    assert.equal(await present(locked, A), false);

    const withToken = await runCli(['gc', '--store', locked.addr, '--keep-since', '0', '--grace', '0'], { env: { ...nixEnv(), NIX_CASTORE_AUTH_TOKEN_FILE: tokenFile } });
    assert.equal(withToken.code, 0, withToken.stderr);
    assert.match(withToken.stderr, line(PHASES[0]));
  });
});
