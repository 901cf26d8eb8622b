// Configuration precedence: flags > environment > config file > defaults,
// and config files checked by zod with errors naming the file and key.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { effectiveConfig, DEFAULT_ADDR } from '../../src/addr/config.js';
import { CLI } from '../helpers/daemon.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'castore-config-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('effective configuration', () => {
  it('defaults with no file and no environment', async () => {
    const c = await effectiveConfig({}, {}, dir);
    assert.equal(c.blobServiceAddr, DEFAULT_ADDR);
    assert.equal(c.jobs, 4);
    assert.equal(c.sources.blobServiceAddr, 'default');
  });

  it('file < env < flag', async () => {
    const proj = join(dir, 'proj');
    await mkdir(proj);
    await writeFile(join(proj, '.nix-castorerc.json'), JSON.stringify({ store: 'grpc+unix:///run/file.sock', pathInfoServiceAddr: 'memory://', jobs: 7 }));
    const fromFile = await effectiveConfig({}, {}, proj);
    assert.equal(fromFile.blobServiceAddr, 'grpc+unix:///run/file.sock');
    assert.equal(fromFile.pathInfoServiceAddr, 'memory://');
    assert.equal(fromFile.jobs, 7);
    assert.match(fromFile.sources.blobServiceAddr, /\.nix-castorerc\.json \(store\)/);

    const env = { BLOB_SERVICE_ADDR: 'grpc+http://env:1' };
    const fromEnv = await effectiveConfig({}, env, proj);
    assert.equal(fromEnv.blobServiceAddr, 'grpc+http://env:1');
    assert.equal(fromEnv.directoryServiceAddr, 'grpc+unix:///run/file.sock');
    assert.equal(fromEnv.sources.blobServiceAddr, 'BLOB_SERVICE_ADDR');

    const fromFlag = await effectiveConfig({ store: 'grpc+http://flag:2', jobs: 2 }, env, proj);
    assert.equal(fromFlag.blobServiceAddr, 'grpc+http://flag:2');
    assert.equal(fromFlag.pathInfoServiceAddr, 'grpc+http://flag:2');
    assert.equal(fromFlag.jobs, 2);
  });

  it('a "nix-castore" key in package.json', async () => {
    const proj = join(dir, 'pkg');
    await mkdir(proj);
    await writeFile(join(proj, 'package.json'), JSON.stringify({ name: 'x', 'nix-castore': { store: 'memory://' } }));
    assert.equal((await effectiveConfig({}, {}, proj)).directoryServiceAddr, 'memory://');
  });

  it('rejects unknown keys and wrong types, naming file and key', async () => {
    const proj = join(dir, 'bad');
    await mkdir(proj);
    await writeFile(join(proj, '.nix-castorerc.json'), JSON.stringify({ jobs: 'many', stor: 'x' }));
    await assert.rejects(effectiveConfig({}, {}, proj), (e: Error) => /\.nix-castorerc\.json/.test(e.message) && /jobs/.test(e.message) && /stor/.test(e.message));
  });

  it('nix-castore config prints it as JSON', () => {
    const r = spawnSync(process.execPath, [CLI, 'config', '--store', 'memory://'], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(r.status, 0, r.stderr);
    const c = JSON.parse(r.stdout);
    assert.equal(c.blobServiceAddr, 'memory://');
    assert.equal(c.sources.blobServiceAddr, '--store');
  });
});
