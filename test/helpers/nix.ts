// Helpers for tests that use real Nix (Debian's nix-bin, Nix 2.8; see
// shared/spec/nix.md). `bash scripts/ensure-test-deps.sh` installs it; when it
// is missing every helper rejects with a message saying so, so tests fail
// loudly instead of being skipped.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const NIX_MISSING_MESSAGE =
  'real Nix is required by this test but was not found on PATH (nix, nix-build, nix-store). ' +
  'Run `bash scripts/ensure-test-deps.sh` (as root it installs Debian\'s nix-bin; ' +
  'otherwise: apt-get install nix-bin), or use `npm test`, which runs it first.';

/** nix.conf lines every test invocation gets (through NIX_CONFIG). */
export const BASE_NIX_CONFIG: readonly string[] = [
  'substituters =', // no network here: avoids ~4.5 s of DNS retries per build
  'experimental-features = nix-command flakes',
  'sandbox = false',
  'post-build-hook =', // never run a hook configured on the machine
];

/**
 * Environment for child processes that run Nix: the current environment with
 * NIX_CONFIG replaced by BASE_NIX_CONFIG plus `extraConfig` lines (later
 * lines win), so nothing inherited (e.g. a post-build-hook) leaks in.
 */
export function nixEnv(extraConfig: readonly string[] = [], extraEnv: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
  delete env.NIX_CONF_DIR; // it would replace /etc/nix/nix.conf
  env.NIX_CONFIG = [...BASE_NIX_CONFIG, ...extraConfig].join('\n');
  return env;
}

export interface RunNixOptions {
  cwd?: string;
  /** Full environment; default nixEnv(). */
  env?: NodeJS.ProcessEnv;
  maxBuffer?: number;
}

export interface RunNixResult {
  stdout: Buffer;
  stderr: string;
}

/** Runs a Nix command; rejects with its stderr on failure, or NIX_MISSING_MESSAGE. */
export function runNix(cmd: string, args: readonly string[], opts: RunNixOptions = {}): Promise<RunNixResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        env: opts.env ?? nixEnv(),
        encoding: 'buffer',
        maxBuffer: opts.maxBuffer ?? 1 << 30,
      },
      (err, stdout, stderr) => {
        const stderrText = stderr.toString('utf8');
        if (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            reject(new Error(`${NIX_MISSING_MESSAGE} (${cmd}: not found)`));
            return;
          }
          const tail = stderrText.trim().split('\n').slice(-30).join('\n');
          reject(new Error(`${cmd} ${args.join(' ')} failed (${err.message.split('\n')[0]}):\n${tail}`));
          return;
        }
        resolvePromise({ stdout, stderr: stderrText });
      },
    );
  });
}

let versionPromise: Promise<string> | undefined;

/** Resolves to `nix --version` output; rejects with NIX_MISSING_MESSAGE when Nix is absent. */
export function requireNix(): Promise<string> {
  versionPromise ??= runNix('nix', ['--version']).then((r) => r.stdout.toString('utf8').trim());
  return versionPromise;
}

export interface NixBuildOptions {
  /** Attributes to build (`-A`), in order; outputs are returned in that order. */
  attr?: string | readonly string[];
  /** `--argstr name value` pairs. */
  argstr?: Readonly<Record<string, string>>;
  /** `--arg name expr` pairs (values are Nix expressions). */
  arg?: Readonly<Record<string, string>>;
  /** Create this out-link (`-o`); default `--no-out-link`. */
  outLink?: string;
  /** Extra nix.conf lines for this build (e.g. `post-build-hook = /abs/hook`). */
  config?: readonly string[];
  /** Extra command-line arguments for nix-build. */
  extraArgs?: readonly string[];
  /** Working directory (relative paths in expression text resolve against it). */
  cwd?: string;
  /** Full environment; default nixEnv(config). */
  env?: NodeJS.ProcessEnv;
  /** Force interpretation: 'file' or 'expr'. Default: a file when it names an existing path. */
  kind?: 'file' | 'expr';
}

/**
 * Builds with `nix-build` and resolves to the output store paths (one per
 * line of nix-build's output). `fileOrExpr` is a .nix file (or directory)
 * when it names an existing path, else Nix expression text (`-E`).
 * Builds must not rely on nixpkgs: use builtins.derivation with
 * `builder = "/bin/sh"` and absolute tool paths.
 */
export async function nixBuild(fileOrExpr: string, opts: NixBuildOptions = {}): Promise<string[]> {
  const kind = opts.kind ?? (existsSync(resolve(opts.cwd ?? '.', fileOrExpr)) ? 'file' : 'expr');
  const args: string[] = kind === 'file' ? [fileOrExpr] : ['-E', fileOrExpr];
  const attrs = typeof opts.attr === 'string' ? [opts.attr] : (opts.attr ?? []);
  for (const a of attrs) args.push('-A', a);
  for (const [k, v] of Object.entries(opts.argstr ?? {})) args.push('--argstr', k, v);
  for (const [k, v] of Object.entries(opts.arg ?? {})) args.push('--arg', k, v);
  if (opts.outLink !== undefined) args.push('-o', opts.outLink);
  else args.push('--no-out-link');
  args.push(...(opts.extraArgs ?? []));
  const { stdout } = await runNix('nix-build', args, { cwd: opts.cwd, env: opts.env ?? nixEnv(opts.config) });
  return stdout
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0);
}

/** One entry of `nix path-info --json`, normalised to the 2.8 (array) shape. */
export interface NixPathInfo {
  path: string;
  /** false for a path that is not valid (absent otherwise). */
  valid?: boolean;
  /** SRI form: `sha256-<base64>`. */
  narHash?: string;
  narSize?: number;
  references?: string[];
  deriver?: string | null;
  registrationTime?: number;
  ultimate?: boolean;
  signatures?: string[];
  ca?: string | null;
  closureSize?: number;
  [key: string]: unknown;
}

/** Parses `nix path-info --json` output: the 2.8 array shape or the newer object-keyed-by-path shape. */
export function parsePathInfoJson(text: string): NixPathInfo[] {
  const data: unknown = JSON.parse(text);
  if (Array.isArray(data)) return data as NixPathInfo[];
  if (data !== null && typeof data === 'object') {
    return Object.entries(data as Record<string, unknown>).map(([path, v]) =>
      v === null || typeof v !== 'object' ? { path, valid: false } : { ...(v as object), path },
    );
  }
  throw new Error(`unexpected nix path-info --json output: ${text.slice(0, 200)}`);
}

/** `nix path-info --json` for the given paths (with `-r` when recursive). */
export async function nixPathInfo(
  paths: string | readonly string[],
  opts: { recursive?: boolean; closureSize?: boolean } = {},
): Promise<NixPathInfo[]> {
  const args = ['path-info', '--json'];
  if (opts.recursive) args.push('--recursive');
  if (opts.closureSize) args.push('--closure-size');
  args.push(...(typeof paths === 'string' ? [paths] : paths));
  const { stdout } = await runNix('nix', args);
  return parsePathInfoJson(stdout.toString('utf8'));
}

/** The NAR serialisation of a store path, from `nix-store --dump`. */
export async function nixStoreDump(path: string): Promise<Buffer> {
  return (await runNix('nix-store', ['--dump', path])).stdout;
}

function findUp(rel: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, rel);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find ${rel} above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Absolute path of test/fixtures/closure.nix (works from test/ and from dist/test/). */
export function fixtureClosureNixFile(): string {
  return findUp(join('test', 'fixtures', 'closure.nix'));
}

export type FixtureKey = 'tree' | 'file' | 'exe' | 'symlink' | 'emptyDir';

/** The paths of the fixture closure, by attribute of closure.nix; `tree` is the closure's root. */
export const FIXTURE_PATHS: ReadonlyArray<{ key: FixtureKey; description: string }> = [
  {
    key: 'tree',
    description:
      'directory root: nested dirs, an empty dir, executable/plain/empty/2 MiB files, ' +
      'relative/absolute/dangling/store/directory symlinks, bytewise-sorted and non-UTF-8 names; ' +
      'refers to every other fixture path and to itself',
  },
  { key: 'file', description: 'root is a single plain regular file' },
  { key: 'exe', description: 'root is a single executable regular file' },
  { key: 'symlink', description: 'root is a symlink (absolute, to the `file` store path; a reference)' },
  { key: 'emptyDir', description: 'root is an empty directory' },
];

export interface FixturePath {
  key: FixtureKey;
  path: string;
  description: string;
}

export interface FixtureClosure {
  /** Store path of `tree`, whose closure is exactly `paths`. */
  root: string;
  /** Every path of the closure, in FIXTURE_PATHS order. */
  paths: FixturePath[];
  byKey: Record<FixtureKey, string>;
}

let fixturePromise: Promise<FixtureClosure> | undefined;

/**
 * Builds test/fixtures/closure.nix (once per process; Nix reuses the paths
 * across runs since the content is deterministic).
 */
export function fixtureClosure(): Promise<FixtureClosure> {
  fixturePromise ??= (async () => {
    await requireNix();
    const keys = FIXTURE_PATHS.map((p) => p.key);
    const outs = await nixBuild(fixtureClosureNixFile(), { attr: keys, kind: 'file' });
    if (outs.length !== keys.length) {
      throw new Error(`building the fixture closure gave ${outs.length} paths, expected ${keys.length}: ${outs.join(' ')}`);
    }
    const paths = FIXTURE_PATHS.map((p, i) => ({ ...p, path: outs[i] }));
    const byKey = Object.fromEntries(paths.map((p) => [p.key, p.path])) as Record<FixtureKey, string>;
    return { root: byKey.tree, paths, byKey };
  })();
  fixturePromise.catch(() => {
    fixturePromise = undefined; // allow a retry after e.g. installing Nix
  });
  return fixturePromise;
}
