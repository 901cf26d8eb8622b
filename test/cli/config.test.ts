// Configuration precedence: flags > environment > config file > defaults,
// and config files checked by zod with errors naming the file and key.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { daemonLimitSettings, effectiveConfig, DEFAULT_ADDR } from '../../src/addr/config.js';
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

  it('daemon limits in the file take sizes as the flags do ("512M"), and a bad one is blamed on where it came from', async () => {
    const proj = join(dir, 'limits');
    await mkdir(proj);
    await writeFile(join(proj, '.nix-castorerc.json'), JSON.stringify({ maxBufferedBytes: '512M', httpWriteBuffer: 65536, streamStallTimeout: 'soon' }));
    const set = await daemonLimitSettings({}, {}, proj);
    assert.equal(set.maxBufferedBytes?.value, '512M');
    assert.match(set.maxBufferedBytes?.source ?? '', /\.nix-castorerc\.json \(maxBufferedBytes\)/);
    assert.equal(set.httpWriteBuffer?.value, '65536');
    assert.equal((await daemonLimitSettings({ maxBufferedBytes: '1G' }, { NIX_CASTORE_MAX_BUFFERED_BYTES: '2G' }, proj)).maxBufferedBytes?.source, undefined, 'the flag wins');
    assert.equal((await daemonLimitSettings({}, { NIX_CASTORE_MAX_BUFFERED_BYTES: '2G' }, proj)).maxBufferedBytes?.source, 'NIX_CASTORE_MAX_BUFFERED_BYTES');
    // Every command reads the file: a text size no longer breaks them.
    const ok = spawnSync(process.execPath, [CLI, 'config', '--store', 'memory://'], { cwd: proj, encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(ok.status, 0, ok.stderr);
    // The daemon refuses the bad one, naming the file and key, and a bad environment value by its variable.
    const bad = spawnSync(process.execPath, [CLI, 'daemon', '--listen', `unix:${join(proj, 'd.sock')}`, '--store', 'memory://'], { cwd: proj, encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 20_000 });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /\.nix-castorerc\.json \(streamStallTimeout\) takes a positive whole number, got "soon"/);
    const badEnv = spawnSync(process.execPath, [CLI, 'daemon', '--listen', `unix:${join(dir, 'e.sock')}`, '--store', 'memory://'], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH, NIX_CASTORE_MAX_BUFFERED_BYTES: 'abc' }, timeout: 20_000 });
    assert.equal(badEnv.status, 2, badEnv.stderr);
    assert.match(badEnv.stderr, /NIX_CASTORE_MAX_BUFFERED_BYTES takes a positive size/);
  });

  it('nix-castore config shows where the hook pushes and the limits a daemon started here would take, and what it would refuse', async () => {
    const proj = join(dir, 'shown');
    await mkdir(proj);
    await writeFile(join(proj, '.nix-castorerc.json'), JSON.stringify({ store: 'grpc+unix:///run/castore.sock', maxBufferedBytes: '512M', streamStallTimeout: 'soon' }));
    const env = { PATH: process.env.PATH, HOME: proj, NIX_CASTORE_STORE: 'grpc+http://cache.example:8000', NIX_CASTORE_HTTP_WRITE_BUFFER: '1M' };
    const r = spawnSync(process.execPath, [CLI, 'config'], { cwd: proj, encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    const c = JSON.parse(r.stdout);
    assert.equal(c.blobServiceAddr, 'grpc+unix:///run/castore.sock');
    assert.deepEqual(c.hook, { store: 'grpc+http://cache.example:8000', spool: join(proj, '.local/state/nix-castore/spool'), sources: { store: 'NIX_CASTORE_STORE', spool: 'default' } });
    assert.equal(c.daemon.data, join(proj, '.local/share/nix-castore'));
    assert.equal(c.daemon.maxBufferedBytes, 512 * 1024 * 1024);
    assert.match(c.daemon.sources.maxBufferedBytes, /\.nix-castorerc\.json \(maxBufferedBytes\)/);
    assert.equal(c.daemon.httpWriteBuffer, 1024 * 1024);
    assert.equal(c.daemon.sources.httpWriteBuffer, 'NIX_CASTORE_HTTP_WRITE_BUFFER');
    assert.equal(c.daemon.maxConcurrentStreams, 1000);
    assert.equal(c.daemon.sources.maxConcurrentStreams, 'default');
    assert.deepEqual(c.daemon.problems, [`${join(proj, '.nix-castorerc.json')} (streamStallTimeout) takes a positive whole number, got "soon"`]);
    assert.match(r.stderr, /a daemon started here would refuse this: .*streamStallTimeout/);
    // Without NIX_CASTORE_STORE the hook pushes where everything else does.
    const plain = JSON.parse(spawnSync(process.execPath, [CLI, 'config'], { cwd: proj, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: proj } }).stdout);
    assert.equal(plain.hook.store, 'grpc+unix:///run/castore.sock');
    assert.match(plain.hook.sources.store, /as blobServiceAddr \(.*\.nix-castorerc\.json \(store\)\)/);
  });

  it('nix-castore config prints it as JSON', () => {
    const r = spawnSync(process.execPath, [CLI, 'config', '--store', 'memory://'], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.equal(r.status, 0, r.stderr);
    const c = JSON.parse(r.stdout);
    assert.equal(c.blobServiceAddr, 'memory://');
    assert.equal(c.sources.blobServiceAddr, '--store');
  });
});
