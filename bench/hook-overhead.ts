// Per-build overhead of the queued post-build hook: the same number of
// trivial builds with and without the hook, in one run.
import { mkdtemp, rm, writeFile, chmod, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLI } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { timed, table, summary } from './util.js';

const CHAIN = fileURLToPath(new URL('../../test/fixtures/hook-chain.nix', import.meta.url));

function buildChain(length: number, config: string[], env: NodeJS.ProcessEnv): void {
  const salt = `${Date.now()}-${Math.random()}`;
  execFileSync('nix-build', [CHAIN, '--no-out-link', '--argstr', 'salt', salt, '--arg', 'length', String(length), '-A', 'top'], {
    env: nixEnv(config, env),
    stdio: 'ignore',
  });
}

export async function hookOverhead(builds = 20): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'bench-hook-'));
  try {
    // As installed: bin/nix-castore-hook next to a nix-castore executable.
    const hook = join(tmp, 'nix-castore-hook');
    await symlink(fileURLToPath(new URL('../../bin/nix-castore-hook', import.meta.url)), hook);
    await writeFile(join(tmp, 'nix-castore'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
    await chmod(join(tmp, 'nix-castore'), 0o755);
    buildChain(2, [], {}); // warm up Nix's evaluator caches
    const without = await timed(async () => buildChain(builds, [], {}));
    const queued = await timed(async () => buildChain(builds, [`post-build-hook = ${hook}`], { NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: join(tmp, 'spool') }));
    const per = ((queued.seconds - without.seconds) / builds) * 1000;
    // Below zero is noise: the hook cannot make builds faster.
    const extra = per >= 0 ? `+${per.toFixed(0)} ms per build` : `${per.toFixed(0)} ms per build (within noise)`;
    summary.rows.push({ what: 'queued post-build hook', measured: extra, compared: `${((without.seconds / builds) * 1000).toFixed(0)} ms per trivial build without it` });
    return [
      `Queued post-build hook, ${builds} trivial builds in a chain:`,
      table([
        ['without the hook', `${without.seconds.toFixed(2)} s`, `${((without.seconds / builds) * 1000).toFixed(0)} ms per build`],
        ['with the queued hook', `${queued.seconds.toFixed(2)} s`, `${(queued.seconds / without.seconds).toFixed(2)}× ; ${extra} (target well under 100 ms)`],
      ]),
    ].join('\n');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
