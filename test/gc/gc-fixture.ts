// Real Nix closures for the collector's tests (test/fixtures/gc-closures.nix),
// built with a fresh numeric salt so no other test or store has seen them.
import { after, before } from 'node:test';
import { dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { CLI } from '../helpers/daemon.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { rmSync } from 'node:fs';
import { fixtureClosureNixFile, nixBuild, runNix } from '../helpers/nix.js';
import { runCli, type CliResult } from '../copy/run-cli.js';
import { nixEnv } from '../helpers/nix.js';

export const GC_FIXTURE = (): string => join(dirname(fixtureClosureNixFile()), 'gc-closures.nix');

export function freshSalt(): string {
  return `1${process.pid % 1000}${Date.now() % 100000}`;
}

export async function buildGc(salt: string, attrs: string[], argstr: Record<string, string> = {}): Promise<string[]> {
  return nixBuild(GC_FIXTURE(), { attr: attrs, argstr: { salt, ...argstr }, kind: 'file' });
}

export interface GcClosures {
  /** Built by `before`: a path the others refer to, old "twin" paths, live paths. */
  shared: string;
  twins: string[];
  live: string[];
  /** A temp directory of the test's own. */
  tmp: string;
}

/**
 * Registers the suite's set-up: the fixture's closures built with a fresh
 * salt (`groups` of files each) and a temp directory; after the suite,
 * `stop` runs (say, daemons are killed), then both are removed.
 */
export function gcClosures(label: string, groups: string, stop: () => Promise<void> = async () => {}): GcClosures {
  const c = { shared: '', twins: [], live: [], tmp: '' } as GcClosures;
  before(async () => {
    const salt = freshSalt();
    const argstr = { rounds: '1', groups };
    [c.shared] = await buildGc(salt, ['shared'], argstr);
    c.twins = await buildGc(salt, ['twins'], argstr);
    c.live = await buildGc(salt, ['live'], argstr);
    c.tmp = await mkdtemp(join(tmpdir(), `${label}-`));
  });
  after(async () => {
    await stop();
    await deleteFromNix([...c.live, ...c.twins]);
    await deleteFromNix([c.shared].filter(Boolean));
    if (c.tmp) await rm(c.tmp, { recursive: true, force: true });
  });
  return c;
}

/** Removes the given paths from /nix/store (best effort). */
export async function deleteFromNix(paths: string[]): Promise<void> {
  if (paths.length > 0) await runNix('nix-store', ['--delete', ...paths]).catch(() => undefined);
}

/** A clock file for NIX_CASTORE_CLOCK_FILE, and a setter. */
export async function testClock(startMs: number): Promise<{ file: string; set(ms: number): Promise<void>; env(): NodeJS.ProcessEnv }> {
  const dir = await mkdtemp(join(tmpdir(), 'gc-clock-'));
  // Tests hand the file to daemons they stop themselves; it goes with the test process.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'now');
  await writeFile(file, String(startMs));
  return {
    file,
    set: (ms) => writeFile(file, String(ms)),
    env: () => ({ ...nixEnv(), NIX_CASTORE_CLOCK_FILE: file }),
  };
}

export const DAY = 86_400_000;

export function cli(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> {
  return runCli(args, { env });
}

/** `nix-castore nar --store STORE PATH`'s bytes. */
export function narOf(store: string, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, 'nar', '--store', store, path], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d) => out.push(d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`nar ${path}: ${code} ${err}`))));
  });
}
