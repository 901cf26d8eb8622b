// Real-Nix fixtures for end-to-end tests of `nix-castore copy`: the closure
// of test/fixtures/copy-closure.nix (a 100 MiB leaf, a tricky tree, a file
// root, a symlink root, a chain) and the closure metadata Nix itself writes
// for a build through exportReferencesGraph, captured into store files.
// See shared/spec/nix.md §3 and shared/spec/closure.md §1.
import { dirname, join } from 'node:path';
import { fixtureClosureNixFile, nixBuild, requireNix, runNix } from './nix.js';

export type CopyFixtureKey = 'big' | 'tree' | 'file' | 'symlink' | 'middle' | 'top';

export interface CopyFixture {
  /** Store path of top. */
  top: string;
  paths: Record<CopyFixtureKey, string>;
  /** Every path of top's closure, sorted. */
  closure: string[];
  /** A store path (file) holding Nix's own .attrs.json captured from the structured-attrs build. */
  attrsJsonFile: string;
  /** A store path (file) holding the legacy `closure` file. */
  legacyClosureFile: string;
}

/** What each path of the fixture contains ("->" = refers to). */
export const COPY_FIXTURE_PATHS: ReadonlyArray<{ key: CopyFixtureKey; description: string }> = [
  {
    key: 'big',
    description:
      'leaf directory: big.bin, 100 MiB (104857600 bytes) of pseudo-random bytes (AES-256-CTR keystream keyed ' +
      'by the salt), and small.txt; no references',
  },
  {
    key: 'tree',
    description:
      'directory: nested dirs (a/b/c/deep.txt), empty-dir/, executable bin/hello, empty-file, README, ' +
      'symlinks link-relative, a/link-up, link-absolute (/bin/sh), link-dangling, link-dir; ' +
      'self-ref holds its own out path; -> itself only',
  },
  { key: 'file', description: 'root is a single plain regular file; no references' },
  { key: 'symlink', description: 'root is a symlink to the `file` store path; -> file' },
  { key: 'middle', description: 'directory: big-path (big\'s out path), big-small (symlink into big); -> big' },
  {
    key: 'top',
    description: 'directory: paths (lists all paths above), symlinks tree and middle; -> big, tree, file, symlink, middle',
  },
];

/** Size of big/big.bin. */
export const BIG_FILE_SIZE = 100 * 1024 * 1024;

/** Absolute path of test/fixtures/copy-closure.nix (works from test/ and from dist/test/). */
export function copyFixtureNixFile(): string {
  return join(dirname(fixtureClosureNixFile()), 'copy-closure.nix');
}

const cache = new Map<string, Promise<CopyFixture>>();

/** Nix store path order: plain string order (all share the /nix/store/ prefix and 32-char hashes). */
function sortPaths(paths: Iterable<string>): string[] {
  return [...paths].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Builds (cached per salt per process) with real Nix. Every salt gives
 * different store paths and different file contents; the default "1" is
 * shared by all tests (and reused by Nix across runs). Use a salt nobody
 * else uses (e.g. with a random part) for a closure no store has seen.
 */
export function copyFixture(salt = '1'): Promise<CopyFixture> {
  let p = cache.get(salt);
  if (p === undefined) {
    p = buildCopyFixture(salt);
    cache.set(salt, p);
    p.catch(() => {
      if (cache.get(salt) === p) cache.delete(salt); // allow a retry
    });
  }
  return p;
}

async function buildCopyFixture(salt: string): Promise<CopyFixture> {
  await requireNix();
  const keys = COPY_FIXTURE_PATHS.map((k) => k.key);
  const attrs = [...keys, 'attrsJson', 'legacyClosure'];
  let outs: string[];
  for (let attempt = 1; ; attempt++) {
    try {
      outs = await nixBuild(copyFixtureNixFile(), { attr: attrs, argstr: { salt }, kind: 'file' });
      break;
    } catch (e) {
      // Nix 2.8 can report a builder that was just exiting as "failed due to
      // signal 9 (Killed)" (NixOS/nix#2176), readily when another nix-build
      // runs concurrently. copy-closure.nix works around it (exitSafely);
      // this retry is a second line of defence. Nix keeps the outputs
      // already built, so a retry only redoes what was lost.
      if (attempt >= 3 || !/failed due to signal/.test((e as Error).message)) throw e;
      process.stderr.write(`copyFixture(${JSON.stringify(salt)}): a builder was killed, retrying (${attempt}/2)\n`);
    }
  }
  if (outs.length !== attrs.length) {
    throw new Error(`building ${copyFixtureNixFile()} (salt ${salt}) gave ${outs.length} paths, expected ${attrs.length}: ${outs.join(' ')}`);
  }
  const paths = Object.fromEntries(keys.map((k, i) => [k, outs[i]])) as Record<CopyFixtureKey, string>;
  const { stdout } = await runNix('nix-store', ['--query', '--requisites', paths.top]);
  const closure = sortPaths(
    stdout
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0),
  );
  return {
    top: paths.top,
    paths,
    closure,
    attrsJsonFile: outs[keys.length],
    legacyClosureFile: outs[keys.length + 1],
  };
}

/**
 * Deletes a fixture's output paths from the Nix store (its 100 MiB
 * included) and forgets it, so tests that build fresh salts do not fill the
 * disk. Only for salts that no one else uses concurrently. Best effort: a
 * path that is still alive (e.g. a GC root) is left in place.
 */
export async function deleteCopyFixture(salt: string): Promise<void> {
  const p = cache.get(salt);
  if (p === undefined) return;
  cache.delete(salt);
  let f: CopyFixture;
  try {
    f = await p;
  } catch {
    return;
  }
  const all = [f.attrsJsonFile, f.legacyClosureFile, ...f.closure];
  await runNix('nix-store', ['--delete', ...all]).catch(() => undefined);
}
