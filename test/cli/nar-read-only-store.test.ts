// `nar` records the read in the store it exports from (retention), but
// never into a store without write bits: a Nix store path made by
// `nix build .#uploadClosure` (`--store file://$PWD/result`). As root it
// wrote access/ into that path, which Nix then reported as modified.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { runNix } from '../helpers/nix.js';
import { CLI, CLI_NODE_FLAGS } from '../helpers/daemon.js';
import { runCli } from '../copy/run-cli.js';

function narSha256(store: string, path: string): { code: number | null; sha: string; stderr: string } {
  const r = spawnSync(process.execPath, [...CLI_NODE_FLAGS, CLI, 'nar', '--store', `file://${store}`, path], { maxBuffer: 1 << 26 });
  return { code: r.status, sha: createHash('sha256').update(r.stdout).digest('hex'), stderr: r.stderr.toString() };
}

it('a NAR exported from a store without write bits leaves it unchanged; a writable store records the read', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'nar-read-only-'));
  try {
    await writeFile(join(tmp, 'f.txt'), `read-only store ${process.pid} ${Date.now()}\n`);
    const path = (await runNix('nix-store', ['--add', join(tmp, 'f.txt')])).stdout.toString().trim();
    const dump = createHash('sha256').update((await runNix('nix-store', ['--dump', path])).stdout).digest('hex');
    for (const name of ['frozen', 'open']) {
      const c = await runCli(['copy', '--quiet', '--store', `file://${join(tmp, name)}`, path]);
      assert.equal(c.code, 0, c.stderr);
    }
    // As a Nix store path is: no write bits anywhere.
    spawnSync('chmod', ['-R', 'a-w', join(tmp, 'frozen')]);
    const before = (await readdir(join(tmp, 'frozen'))).sort();
    const frozen = narSha256(join(tmp, 'frozen'), path);
    assert.equal(frozen.code, 0, frozen.stderr);
    assert.equal(frozen.sha, dump);
    assert.deepEqual((await readdir(join(tmp, 'frozen'))).sort(), before, 'nothing written into the store');
    const open = narSha256(join(tmp, 'open'), path);
    assert.equal(open.code, 0, open.stderr);
    assert.ok((await readdir(join(tmp, 'open'))).includes('access'), 'the read is recorded where the store may be written');
    await runNix('nix-store', ['--delete', path]).catch(() => undefined);
  } finally {
    await chmod(tmp, 0o755).catch(() => undefined);
    spawnSync('chmod', ['-R', 'u+w', tmp]);
    await rm(tmp, { recursive: true, force: true });
  }
});
