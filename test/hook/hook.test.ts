// The post-build hook with real Nix: building a chain of five derivations
// with `post-build-hook` set leaves every output in the daemon's store —
// pushed at once (direct mode) or queued durably and drained later (queue
// mode, with the daemon down during the builds) — and a store outage never
// fails a build unless --strict.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, chmod, readdir, mkdir, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, startDaemonProcess } from '../helpers/daemon.js';
import { nixEnv, runNix } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';
import { runCli } from '../copy/run-cli.js';

const CHAIN = fileURLToPath(new URL('../../../test/fixtures/hook-chain.nix', import.meta.url));

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-hook-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

async function hookScript(extraArgs = ''): Promise<string> {
  const file = join(tmp, `hook-${Math.random().toString(36).slice(2)}.sh`);
  await writeFile(file, `#!/bin/sh\nexec ${process.execPath} ${CLI} hook ${extraArgs}\n`);
  await chmod(file, 0o755);
  return file;
}

/** Builds a fresh chain with the hook; returns the five outputs (in order) and nix-build's stderr. */
async function buildChain(hook: string, env: NodeJS.ProcessEnv): Promise<{ outputs: string[]; stderr: string }> {
  const salt = `${Date.now()}-${Math.random()}`;
  const r = await runNix('nix-build', [CHAIN, '--no-out-link', '--argstr', 'salt', salt, '-A', 'top'], {
    env: nixEnv([`post-build-hook = ${hook}`], env),
  });
  const top = r.stdout.toString().trim();
  const { stdout } = await runNix('nix-store', ['-qR', top]);
  const outputs = stdout.toString().split('\n').filter((p) => /nix-castore-hook-step-\d+$/.test(p));
  assert.equal(outputs.length, 5, 'five steps built');
  return { outputs, stderr: r.stderr };
}

describe('post-build-hook', () => {
  it('direct mode: each output is pushed as it is built', async () => {
    const d = await startDaemonProcess();
    const store = openStore(sameAddr(d.addr));
    try {
      const { outputs } = await buildChain(await hookScript(), { NIX_CASTORE_HOOK_MODE: 'direct', NIX_CASTORE_STORE: d.addr });
      assert.deepEqual((await publishedPaths(store)).filter((p) => outputs.includes(p)).sort(), [...outputs].sort());
      await assertStoreMatchesNix(store, outputs);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('queue mode: builds queue while the daemon is down; drain uploads everything later', async () => {
    const spool = join(tmp, 'spool');
    const { outputs } = await buildChain(await hookScript(), { NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: spool });
    assert.equal((await readdir(spool)).filter((n) => n.endsWith('.json')).length, 5, 'one spool entry per build');
    const d = await startDaemonProcess();
    const store = openStore(sameAddr(d.addr));
    try {
      const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((await readdir(spool)).filter((n) => n.endsWith('.json')), [], 'spool drained');
      await assertStoreMatchesNix(store, outputs);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('bin/nix-castore-hook writes queue entries itself (no Node start-up); drain reads them', async () => {
    // As installed: nix-castore-hook next to a nix-castore executable.
    const bin = join(tmp, 'bin');
    await mkdir(bin);
    await symlink(fileURLToPath(new URL('../../../bin/nix-castore-hook', import.meta.url)), join(bin, 'nix-castore-hook'));
    await writeFile(join(bin, 'nix-castore'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
    await chmod(join(bin, 'nix-castore'), 0o755);
    const spool = join(tmp, 'spool-sh');
    const { outputs } = await buildChain(join(bin, 'nix-castore-hook'), { NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: spool });
    const { listEntries } = await import('../../src/upload/spool.js');
    const entries = await listEntries(spool);
    assert.equal(entries.length, 5);
    for (const e of entries) {
      assert.match(e.drvPath ?? '', /^\/nix\/store\/[0-9a-z]{32}-nix-castore-hook-step-\d\.drv$/);
      assert.equal(e.attempts, 0);
      assert.ok(!Number.isNaN(Date.parse(e.queuedAt)));
    }
    const d = await startDaemonProcess();
    const store = openStore(sameAddr(d.addr));
    try {
      const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
      assert.equal(r.code, 0, r.stderr);
      await assertStoreMatchesNix(store, outputs);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('queue mode: a daemon started afterwards with --drain-spool uploads everything', async () => {
    const spool = join(tmp, 'spool-daemon');
    const { outputs } = await buildChain(await hookScript(), { NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: spool });
    const dataDir = join(tmp, 'drain-data');
    const d = await startDaemonProcess({ dataDir, args: ['--data', dataDir, '--drain-spool', spool] });
    const store = openStore(sameAddr(d.addr));
    try {
      for (let i = 0; i < 300 && (await readdir(spool)).some((n) => n.endsWith('.json')); i++) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual((await readdir(spool)).filter((n) => n.endsWith('.json')), [], `spool drained:\n${d.stderr()}`);
      await assertStoreMatchesNix(store, outputs);
      assert.match(d.stderr(), /draining the hook spool/);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('drain --watch started before its daemon waits for it, then uploads what was queued', async () => {
    const spool = join(tmp, 'spool-watch-first');
    const sock = join(tmp, 'later.sock');
    await writeFile(join(tmp, 'watch-first.txt'), `queued before the daemon ${Date.now()}\n`);
    const path = (await runNix('nix-store', ['--add', join(tmp, 'watch-first.txt')])).stdout.toString().trim();
    const q = await runCli(['hook', '--mode', 'queue', '--spool', spool], { env: { ...nixEnv(), OUT_PATHS: path, DRV_PATH: '' } });
    assert.equal(q.code, 0, q.stderr);
    const drain = spawn(process.execPath, [CLI, 'drain', '--watch', '--spool', spool, '--store', `grpc+unix://${sock}`], { stdio: ['ignore', 'ignore', 'pipe'], env: nixEnv() });
    let log = '';
    drain.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => drain.once('exit', (code) => r(code)));
    let d: Awaited<ReturnType<typeof startDaemonProcess>> | undefined;
    try {
      for (let i = 0; i < 200 && !/trying again in/.test(log); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(log, /the store at grpc\+unix:\S+later\.sock: UNAVAILABLE.*; trying again in 1 s/);
      assert.equal(drain.exitCode, null, 'still running');
      const dataDir = join(tmp, 'watch-first-data');
      d = await startDaemonProcess({ dataDir, args: ['--data', dataDir], extraArgs: ['--listen', `unix:${sock}`] });
      for (let i = 0; i < 600 && (await readdir(spool)).some((n) => n.endsWith('.json')); i++) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual((await readdir(spool)).filter((n) => n.endsWith('.json')), [], `spool drained:\n${log}`);
      const store = openStore(sameAddr(d.addr));
      try {
        assert.deepEqual(await publishedPaths(store), [path]);
      } finally {
        await store.close();
      }
    } finally {
      drain.kill('SIGTERM');
      assert.equal(await exited, 0, log);
      await d?.stop();
    }
  });

  it('an unreachable store does not fail the build; the reason reaches stderr', async () => {
    const { stderr } = await buildChain(await hookScript('--timeout 10'), {
      NIX_CASTORE_HOOK_MODE: 'direct',
      NIX_CASTORE_STORE: `grpc+unix://${join(tmp, 'nobody-listens.sock')}`,
    });
    assert.match(stderr, /nix-castore hook: .* not pushed/);
  });

  it('--strict fails the build when the push fails', async () => {
    await assert.rejects(
      buildChain(await hookScript('--strict --timeout 10'), { NIX_CASTORE_HOOK_MODE: 'direct', NIX_CASTORE_STORE: `grpc+unix://${join(tmp, 'none.sock')}` }),
      /not pushed|hook/,
    );
  });

  it('a failing spool entry is kept and retried; the others are uploaded', async () => {
    const spool = join(tmp, 'spool-mixed');
    const { enqueue, listEntries } = await import('../../src/upload/spool.js');
    await enqueue(spool, { outPaths: ['/nix/store/00000000000000000000000000000000-never-built'] });
    const { outputs } = await buildChain(await hookScript(), { NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: spool });
    const d = await startDaemonProcess();
    const store = openStore(sameAddr(d.addr));
    try {
      const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
      assert.equal(r.code, 1, 'an entry is left');
      await assertStoreMatchesNix(store, outputs);
      const left = await listEntries(spool);
      assert.equal(left.length, 1);
      assert.equal(left[0].attempts, 1);
      assert.match(left[0].lastError ?? '', /never-built/);
      assert.ok(left[0].nextAttemptAt, 'rescheduled');
    } finally {
      await store.close();
      await d.stop();
    }
  });
});
