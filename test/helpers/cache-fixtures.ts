// The small closure of test/fixtures/cache-closure.nix, built with real Nix
// (a salt per caller gives paths no store has seen), and what the
// binary-cache tests need around it: a key pair, a token and a netrc file.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { fixtureClosureNixFile, nixBuild, nixEnv, runNix } from './nix.js';

export interface CacheFixture {
  leaf: string;
  file: string;
  link: string;
  top: string;
  /** Every path of top's closure, in an order where references come first. */
  closure: string[];
}

export async function cacheFixture(salt: string): Promise<CacheFixture> {
  const nixFile = join(dirname(fixtureClosureNixFile()), 'cache-closure.nix');
  const [leaf, file, link, top] = await nixBuild(nixFile, { attr: ['leaf', 'file', 'link', 'top'], argstr: { salt }, kind: 'file' });
  return { leaf, file, link, top, closure: [file, leaf, link, top] };
}

/** Deletes the fixture's paths from /nix/store (best effort). */
export async function deleteCacheFixture(fx: CacheFixture | undefined): Promise<void> {
  if (!fx) return;
  await runNix('nix-store', ['--delete', '--ignore-liveness', fx.top, fx.link, fx.leaf, fx.file]).catch(() => undefined);
}

export async function keyPair(name: string): Promise<{ secret: string; public: string }> {
  const secret = (await runNix('nix', ['key', 'generate-secret', '--key-name', name])).stdout.toString().trim();
  const pub = await new Promise<string>((resolve, reject) => {
    const c = spawn('nix', ['key', 'convert-secret-to-public'], { env: nixEnv() });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`convert-secret-to-public exited ${code}`))));
    c.stdin.end(secret);
  });
  return { secret, public: pub };
}

/** A netrc file giving `token` as the password for 127.0.0.1, as a user would configure Nix. */
export async function netrcFile(path: string, token: string): Promise<string> {
  await writeFile(path, `machine 127.0.0.1\nlogin nix\npassword ${token}\n`, { mode: 0o600 });
  return path;
}

/** A Nix environment with its own narinfo cache (XDG_CACHE_HOME), as another machine would have. */
export function freshNixEnv(cacheHome: string, extraConfig: readonly string[] = []): NodeJS.ProcessEnv {
  return nixEnv(extraConfig, { XDG_CACHE_HOME: cacheHome });
}
