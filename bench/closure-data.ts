// The bench's closure: trees of real files from /usr added to the Nix store.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { nixEnv } from '../test/helpers/nix.js';
import { GiB } from './util.js';

const CANDIDATES = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/share', '/usr/lib/jvm', '/usr/lib/llvm-14', '/usr/lib/gcc', '/usr/lib/python3', '/usr/lib/python3.11', '/usr/libexec', '/usr/include', '/usr/bin', '/usr/local'];

function duBytes(dir: string): number {
  try {
    return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\t')[0]);
  } catch {
    return 0;
  }
}

/**
 * Adds /usr trees to the Nix store until `target` bytes; returns the store
 * paths. The full size takes the first trees whatever their size (lots of
 * small files in /usr/share); a quick look (below 1 GiB) only trees that
 * fit, going down into a tree too big for it, so even a few MiB get real files.
 */
export function realFilesClosure(target: number): { paths: string[]; bytes: number } {
  const paths: string[] = [];
  let bytes = 0;
  const take = (dir: string, depth: number): void => {
    if (bytes >= target) return;
    const size = duBytes(dir);
    if (size === 0) return;
    if (target < GiB && bytes + size > target) {
      if (depth < 3) for (const sub of subdirectories(dir)) take(sub, depth + 1);
      return;
    }
    try {
      paths.push(execFileSync('nix-store', ['--add', dir], { encoding: 'utf8', env: nixEnv(), stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      bytes += size;
    } catch {
      // unreadable or special files: skip that tree
    }
  };
  for (const dir of CANDIDATES) take(dir, 0);
  return { paths, bytes };
}

function subdirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(dir, e.name))
      .sort();
  } catch {
    return [];
  }
}

/** Regular files below the store paths. */
export function fileCount(paths: string[]): number {
  return Number(execFileSync('sh', ['-c', 'find "$@" -type f | wc -l', 'sh', ...paths], { encoding: 'utf8' }).trim());
}

/** Nix's NAR hash of a store path, `sha256:<nix32>`. */
export function nixNarHash(path: string): string {
  return execFileSync('nix-store', ['--query', '--hash', path], { encoding: 'utf8', env: nixEnv() }).trim();
}
