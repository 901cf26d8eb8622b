// Crash tests, seeded: SIGKILL at random moments of real work, then check
// that the on-disk store is consistent (`fsck --nar` clean, run in-process),
// that the work completes when done again, and that every PathInfo matches
// Nix (each trial against `nix path-info` asked once per scenario, see
// assertClosureMatchesNix; assertStoreMatchesNix after the last trial).
//
//   * the daemon killed during a large copy (100 MiB file, grpc+unix), and
//     restarted on the same data directory;
//   * the copy client killed (the daemon keeps running);
//   * a daemon draining the post-build-hook spool killed, and restarted: it
//     drains every entry.
//
// Kill delays are uniform in [0, T], T the duration of the same work
// measured first. The seed is printed (a diagnostic, and in every failure
// message); CRASH_SEED=<n> replays it, CRASH_TRIALS=<n> changes the number
// of trials per scenario (default 20).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyFixture, deleteCopyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { CLI, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, nixPathInfo } from '../helpers/nix.js';
import { seededRandom, seedFromEnv, type SeededRandom } from '../helpers/seeded-random.js';
import { runCli, type CliResult } from '../copy/run-cli.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { basename, parseAbsolute } from '../../src/nix/store-path.js';
import { parseNarHash } from '../../src/nix/hash.js';
import { enqueue } from '../../src/upload/spool.js';
import { fsck, type Finding } from '../../src/fsck/fsck.js';

const SEED = seedFromEnv('CRASH_SEED');
const TRIALS = Number(process.env.CRASH_TRIALS || 20);
const RUN = `${process.pid}-${Date.now().toString(36)}`;

let tmp: string;
const salts: string[] = [];
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-crash-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
  for (const s of salts) await deleteCopyFixture(s);
});

/** A fresh closure (its 100 MiB file included) for one scenario, deleted from /nix/store afterwards. */
function freshFixture(name: string): Promise<CopyFixture> {
  const salt = `crash-${name}-${RUN}`;
  salts.push(salt);
  return copyFixture(salt);
}

/** A scenario's own generator, derived from the seed. */
function rngFor(scenario: number): SeededRandom {
  return seededRandom((SEED ^ Math.imul(scenario + 1, 0x9e3779b9)) >>> 0);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function killNow(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (exited(child)) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await done;
}

/** The CLI as a child process we can kill at any moment. */
function spawnCli(args: string[]): { child: ChildProcess; result: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, result };
}

/**
 * Removes every object, keeping the store's top-level directories. No
 * process may have the store open: one that has keeps knowing the packed
 * blobs it has seen.
 */
async function wipeObjects(dataDir: string): Promise<void> {
  for (const kind of ['blobs', 'packs', 'directory-packs', 'directories', 'pathinfo']) {
    const base = join(dataDir, kind);
    for (const shard of await readdir(base).catch(() => [])) await rm(join(base, shard), { recursive: true, force: true });
  }
}

/** What `nix-castore fsck --nar` checks, in-process; fails on any problem (warnings are fine). */
async function assertFsckClean(dataDir: string, context: string): Promise<void> {
  if (!existsSync(dataDir)) return; // killed before it created the store: nothing to check
  const findings: Finding[] = [];
  const counts = await fsck(dataDir, { nar: true, onFinding: (f) => findings.push(f) });
  const errors = findings.filter((f) => f.severity === 'error').map((f) => `${f.kind} ${f.object}: ${f.message}`);
  assert.equal(counts.errors, 0, `${context}: fsck --nar found problems:\n${errors.join('\n')}`);
}

function copyArgs(fx: CopyFixture, addr: string): string[] {
  return ['copy', '--store', addr, '--attrs', fx.attrsJsonFile];
}

/** How long a full copy into an empty store takes, in ms (the shorter of two runs). */
async function measureCopy(fx: CopyFixture, fresh: () => Promise<string>): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < 2; i++) {
    const addr = await fresh();
    const t0 = performance.now();
    const r = await runCli(copyArgs(fx, addr));
    runs.push(performance.now() - t0);
    assert.equal(r.code, 0, r.stderr);
  }
  return Math.min(...runs);
}

/** What `nix path-info` says about each path of a closure: asked once per scenario. */
interface NixFacts {
  closure: string[];
  byPath: Map<string, { narSize: number; narHash: Buffer; references: string[] }>;
}

async function nixFacts(fx: CopyFixture): Promise<NixFacts> {
  const byPath = new Map<string, { narSize: number; narHash: Buffer; references: string[] }>();
  for (const p of await nixPathInfo(fx.closure)) {
    const references = (p.references ?? []).map((r) => basename(parseAbsolute(r))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    byPath.set(p.path, { narSize: p.narSize!, narHash: Buffer.from(parseNarHash(p.narHash!)), references });
  }
  return { closure: fx.closure, byPath };
}

/**
 * Every path of the closure is published and verifies against Nix: what
 * assertStoreMatchesNix checks, without asking Nix again every trial — the
 * PathInfo's NAR hash, size and references equal `nix path-info`'s, and
 * fsck --nar renders every NAR from the castore and matches it against that
 * hash (Nix's NAR hash is the SHA-256 of `nix-store --dump`). The scenarios
 * also run assertStoreMatchesNix itself after their last trial.
 */
async function assertClosureMatchesNix(store: Store, dataDir: string, nix: NixFacts, context: string): Promise<void> {
  assert.deepEqual(await publishedPaths(store), nix.closure, `${context}: whole closure published`);
  for (const path of nix.closure) {
    const want = nix.byPath.get(path)!;
    const sp = parseAbsolute(path);
    const info = await store.pathInfos.get(sp.digest);
    assert.ok(info?.node && info.narinfo, `${context}: ${path} has a PathInfo`);
    assert.equal(Buffer.from(info.node.name).toString(), basename(sp), `${context}: ${path} root name`);
    assert.equal(info.narinfo.narSize, want.narSize, `${context}: ${path} NAR size`);
    assert.ok(Buffer.from(info.narinfo.narSha256).equals(want.narHash), `${context}: ${path} NAR hash`);
    assert.deepEqual(info.narinfo.referenceNames, want.references, `${context}: ${path} references`);
  }
  await assertFsckClean(dataDir, `${context}, after completion`);
}

/** After a crash: the copy completes when run again and the whole closure matches Nix. */
async function assertCopyCompletes(fx: CopyFixture, addr: string, store: Store, dataDir: string, nix: NixFacts, context: string): Promise<void> {
  const again = await runCli(copyArgs(fx, addr));
  assert.equal(again.code, 0, `${context}: the copy run again failed:\n${again.stderr}`);
  await assertClosureMatchesNix(store, dataDir, nix, context);
}

/** Runs `trial` TRIALS times, naming the seed, trial and kill delay in any failure. */
async function trials(
  t: { diagnostic(msg: string): void },
  name: string,
  rng: SeededRandom,
  maxDelayMs: number,
  trial: (delayMs: number, context: string) => Promise<string>,
): Promise<void> {
  t.diagnostic(`${name}: CRASH_SEED=${SEED}, ${TRIALS} trials, kill delays uniform in [0, ${maxDelayMs.toFixed(0)}] ms`);
  const outcomes = new Map<string, number>();
  const t0 = performance.now();
  for (let i = 0; i < TRIALS; i++) {
    const delay = rng.uniform(0, maxDelayMs);
    const context = `${name} (CRASH_SEED=${SEED}), trial ${i + 1}/${TRIALS}, killed after ${delay.toFixed(0)} ms`;
    try {
      const outcome = await trial(delay, context);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    } catch (err) {
      if (err instanceof Error && !err.message.includes('CRASH_SEED')) err.message = `${context}: ${err.message}`;
      throw err;
    }
  }
  const spread = [...outcomes.entries()].sort().map(([o, c]) => `${c}× ${o}`);
  t.diagnostic(`${name}: ${TRIALS} trials in ${((performance.now() - t0) / 1000).toFixed(1)} s; at the kill: ${spread.join(', ')}`);
}

/** The spool entries of the drain scenario. */
const ENTRIES = (fx: CopyFixture): string[][] => [[fx.paths.file], [fx.paths.tree], [fx.paths.big], [fx.paths.top]];

describe('crash tests', { timeout: 10 * 60 * 1000 }, () => {
  it('the daemon SIGKILLed during a large copy, restarted on the same data: consistent, and the copy completes', async (t) => {
    const fx = await freshFixture('daemon');
    const dataDir = join(tmp, 'daemon-killed');
    const daemonArgs = ['--data', dataDir];
    const nix = await nixFacts(fx);
    let d: DaemonProcess = await startDaemonProcess({ dataDir, args: daemonArgs });
    const store = openStore(sameAddr(fileAddr(dataDir)));
    /** An empty store with a daemon that has not seen the old one. */
    const fresh = async (): Promise<string> => {
      await d.stop();
      await wipeObjects(dataDir);
      d = await startDaemonProcess({ dataDir, args: daemonArgs });
      return d.addr;
    };
    try {
      const typical = await measureCopy(fx, fresh);
      await trials(t, 'daemon killed', rngFor(0), typical, async (delay, context) => {
        await fresh();
        const copy = spawnCli(copyArgs(fx, d.addr));
        await Promise.race([sleep(delay), copy.result]);
        await killNow(d.child);
        assert.equal(d.child.signalCode, 'SIGKILL', `${context}: the daemon was running until killed:\n${d.stderr()}`);
        await d.stop();
        await killNow(copy.child); // it would only retry against a dead socket
        await copy.result;

        d = await startDaemonProcess({ dataDir, args: daemonArgs });
        await assertFsckClean(dataDir, context);
        const partial = (await publishedPaths(store)).length;
        await assertCopyCompletes(fx, d.addr, store, dataDir, nix, context);
        return `${partial}/${fx.closure.length} paths published`;
      });
      await assertStoreMatchesNix(store, fx.closure);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('the copy client SIGKILLed during a large copy, the daemon kept: consistent, and the copy completes', async (t) => {
    const fx = await freshFixture('client');
    const dataDir = join(tmp, 'client-killed');
    const nix = await nixFacts(fx);
    let d = await startDaemonProcess({ dataDir, args: ['--data', dataDir] });
    const store = openStore(sameAddr(fileAddr(dataDir)));
    const fresh = async (): Promise<string> => {
      await d.stop();
      await wipeObjects(dataDir);
      d = await startDaemonProcess({ dataDir, args: ['--data', dataDir] });
      return d.addr;
    };
    try {
      const typical = await measureCopy(fx, fresh);
      await trials(t, 'client killed', rngFor(1), typical, async (delay, context) => {
        await fresh();
        const copy = spawnCli(copyArgs(fx, d.addr));
        await Promise.race([sleep(delay), copy.result]);
        await killNow(copy.child);
        await copy.result;

        // The daemon may still be winding down the cancelled uploads: fsck must hold at any moment.
        await assertFsckClean(dataDir, context);
        const partial = (await publishedPaths(store)).length;
        await assertCopyCompletes(fx, d.addr, store, dataDir, nix, context);
        assert.equal(d.child.exitCode, null, `${context}: the daemon is still running`);
        return `${partial}/${fx.closure.length} paths published`;
      });
      await assertStoreMatchesNix(store, fx.closure);
    } finally {
      await store.close();
      await d.stop();
    }
  });

  it('a daemon draining the hook spool SIGKILLed while entries remain, restarted: it drains them all', async (t) => {
    const fx = await freshFixture('drain');
    const dataDir = join(tmp, 'drain-data');
    const spool = join(tmp, 'drain-spool');
    const socketDir = await mkdtemp(join(tmp, 'sock-'));
    const daemonArgs = ['--data', dataDir, '--drain-spool', spool];
    const nix = await nixFacts(fx);
    const entries = async () => (await readdir(spool).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).length;
    const fill = async () => {
      await rm(dataDir, { recursive: true, force: true });
      await rm(spool, { recursive: true, force: true });
      // Four builds' worth, drained in this order: two small paths, the 100 MiB one, then the top of the closure.
      for (const outPaths of ENTRIES(fx)) await enqueue(spool, { outPaths });
    };
    /** The daemon from its very start (the drain begins as soon as it serves). */
    const spawnDaemon = () => {
      const child = spawn(process.execPath, [CLI, 'daemon', '--listen', `unix:${join(socketDir, 'd.sock')}`, ...daemonArgs], {
        env: nixEnv(),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      child.stderr!.on('data', (c) => (log += c));
      return { child, log: () => log };
    };
    const waitDrained = async (timeoutMs: number, log: () => string, context: string) => {
      const deadline = performance.now() + timeoutMs;
      while ((await entries()) > 0) {
        assert.ok(performance.now() < deadline, `${context}: the spool was not drained within ${timeoutMs} ms:\n${log()}`);
        await sleep(20);
      }
    };
    const store = openStore(sameAddr(fileAddr(dataDir)));
    try {
      // The typical time from the daemon's start to an empty spool (the shorter of two runs).
      let typical = Infinity;
      for (let i = 0; i < 2; i++) {
        await fill();
        const t0 = performance.now();
        const first = spawnDaemon();
        await waitDrained(120_000, first.log, 'measuring the drain');
        typical = Math.min(typical, performance.now() - t0);
        await killNow(first.child, 'SIGTERM');
      }

      let killedWithEntries = 0;
      await trials(t, 'draining daemon killed', rngFor(2), typical, async (delay, context) => {
        await fill();
        const victim = spawnDaemon();
        await sleep(delay);
        await killNow(victim.child);
        assert.equal(victim.child.signalCode, 'SIGKILL', `${context}: the daemon was running until killed:\n${victim.log()}`);
        const left = await entries();
        if (left > 0) killedWithEntries++;
        await assertFsckClean(dataDir, context);

        const d = await startDaemonProcess({ dataDir, args: daemonArgs, env: nixEnv() });
        try {
          await waitDrained(60_000, d.stderr, `${context} (${left} entries left)`);
          await assertClosureMatchesNix(store, dataDir, nix, context);
        } finally {
          await d.stop();
        }
        return `${ENTRIES(fx).length - left}/${ENTRIES(fx).length} entries drained`;
      });
      await assertStoreMatchesNix(store, fx.closure);
      t.diagnostic(`draining daemon killed: ${killedWithEntries}/${TRIALS} trials killed it with entries left in the spool`);
      assert.ok(killedWithEntries >= TRIALS / 2, `most kills hit a non-empty spool (CRASH_SEED=${SEED}): ${killedWithEntries}/${TRIALS}`);
    } finally {
      await store.close();
    }
  });
});
