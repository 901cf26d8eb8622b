// The scale-out store is reachable the ways every backend is: --store, the
// three *_SERVICE_ADDR variables, the config file; bad addresses or
// unreachable engines fail with messages that say what to fix; packed blobs
// are read back without one request each.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { redactAddr } from '../../src/scaleout/probe.js';
import type { S3BlobService } from '../../src/scaleout/s3-blob-service.js';
import { parseAddr } from '../../src/addr/parse.js';
import { blobServiceFromAddr, openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { isKind } from '../../src/castore/errors.js';
import { CLI, startDaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr, scaleoutEnv } from '../helpers/scaleout.js';
import { copyFixture } from '../helpers/copy-fixtures.js';
import { nixEnv } from '../helpers/nix.js';
import { publishedPaths, assertStoreMatchesNix } from '../copy/verify-store.js';

const PG = 'postgres://castore@db.example:5432/castore';

describe('s3:// addresses', () => {
  it('parses bucket, prefix, endpoint, region and the index', () => {
    const a = parseS3Addr(`s3://bkt/some/prefix?endpoint=${encodeURIComponent('http://127.0.0.1:7480')}&region=eu-west-1&index=${encodeURIComponent(PG)}`);
    assert.deepEqual(a, { bucket: 'bkt', prefix: 'some/prefix/', endpoint: 'http://127.0.0.1:7480', region: 'eu-west-1', forcePathStyle: true, indexUrl: PG, compression: undefined, stallMs: undefined }, 'no compression= : the store\'s own default');
    const aws = parseS3Addr(`s3://bkt?index=${PG}`); // unencoded works when the URL has no '&'
    assert.equal(aws.prefix, '');
    assert.equal(aws.indexUrl, PG);
    assert.equal(aws.forcePathStyle, false, 'AWS: virtual-hosted URLs');
    assert.equal(parseS3Addr(`s3://b/p?index=${PG}&endpoint=http://h:1&force-path-style=false`).forcePathStyle, false);
    assert.deepEqual(parseS3Addr(`s3://b?index=${PG}&compression=zstd`).compression, { level: 1 });
    assert.deepEqual(parseS3Addr(`s3://b?index=${PG}&compression=zstd&level=3`).compression, { level: 3 });
    assert.deepEqual(parseS3Addr(`s3://b?index=${PG}&level=-2`).compression, { level: -2 });
    assert.deepEqual(parseS3Addr(`s3://b?index=${PG}&compression=none`).compression, {}, 'compression=none: new blobs raw');
    assert.equal(parseS3Addr(`s3://b?index=${PG}&timeout=2.5`).stallMs, 2500);
  });

  const bad: [string, RegExp][] = [
    ['s3://bkt/p', /needs index=postgres:\/\//],
    ['s3://bkt/p?index=mysql://x', /needs index=postgres:\/\//],
    [`s3:///p?index=${PG}`, /no bucket/],
    [`s3://bkt/p?index=${PG}&endpiont=http://x`, /unknown parameter "endpiont"/],
    [`s3://bkt/p?index=${PG}&endpoint=127.0.0.1:7480`, /endpoint must be an http/],
    [`s3://bkt/p?index=${PG}&force-path-style=yes`, /force-path-style must be true or false/],
    [`s3://bkt/p?index=${PG}&compression=xz`, /compression must be zstd or none/],
    [`s3://bkt/p?index=${PG}&level=20`, /level must be a zstd level from 1/],
    [`s3://bkt/p?index=${PG}&level=fast`, /level must be a zstd level from 1/],
    [`s3://bkt/p?index=${PG}&compression=none&level=3`, /level is for compression=zstd/],
    [`s3://bkt/p?index=${PG}&timeout=0`, /timeout must be a number of seconds above 0/],
    [`s3://bkt/p?index=${PG}&timeout=soon`, /timeout must be a number of seconds above 0/],
    [`s3://bkt/p?index=${PG}&timeout=7200`, /at most 3600/],
  ];
  for (const [addr, msg] of bad) {
    it(`refuses ${addr}`, () => {
      assert.throws(() => parseAddr(addr), (e) => isKind(e, 'invalid') && msg.test((e as Error).message));
    });
  }

  it('refuses postgres:// for blob bytes, naming the address to use instead', () => {
    assert.throws(() => blobServiceFromAddr(PG), (e) => isKind(e, 'invalid') && /s3:\/\/bucket\/prefix\?index=postgres/.test((e as Error).message));
  });

  it('redacts passwords, also inside the encoded index parameter', () => {
    assert.equal(redactAddr('postgres://u:secret@h/db'), 'postgres://u:***@h/db');
    const r = redactAddr(`s3://b/p?index=${encodeURIComponent('postgres://u:secret@h/db')}`);
    assert.ok(!r.includes('secret'), r);
  });

  it('redacts only the password: the endpoint, region and database stay readable', () => {
    const index = encodeURIComponent('postgres://castore@db.internal:5433/castore');
    const addr = `s3://b/p?endpoint=${encodeURIComponent('http://127.0.0.1:7480')}&region=eu-west-1&index=${index}`;
    assert.equal(redactAddr(addr), addr);
    const withPassword = `s3://b/p?endpoint=${encodeURIComponent('http://127.0.0.1:7480')}&region=eu-west-1&index=${encodeURIComponent('postgres://castore:s3cr%t@db.internal/castore')}`;
    assert.equal(redactAddr(withPassword), withPassword.replace(encodeURIComponent('s3cr%t'), '***'));
    assert.equal(redactAddr('s3://b/p?endpoint=http://127.0.0.1:7480&index=postgres://u:pw@h/db'), 's3://b/p?endpoint=http://127.0.0.1:7480&index=postgres://u:***@h/db');
  });
});

function run(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: opts.env ?? nixEnv(), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the scale-out store through the CLI', () => {
  it('a daemon on BLOB_SERVICE_ADDR=s3://…, DIRECTORY_SERVICE_ADDR and PATH_INFO_SERVICE_ADDR=postgres://…; copy configured by a config file', async () => {
    await scaleoutEnv();
    const s = await freshScaleoutAddr('env-config');
    const fx = await copyFixture('scaleout-env');
    const d = await startDaemonProcess({
      args: [],
      env: { ...process.env, BLOB_SERVICE_ADDR: s.addr, DIRECTORY_SERVICE_ADDR: s.pgUrl, PATH_INFO_SERVICE_ADDR: s.pgUrl },
    });
    const proj = await mkdtemp(join(tmpdir(), 'scaleout-cfg-'));
    const direct = openStore(sameAddr(s.addr));
    try {
      assert.match(d.stderr(), /serving .*s3:\/\//);
      await writeFile(join(proj, '.nix-castorerc.json'), JSON.stringify({ store: d.addr }));
      const r = await run(['copy', '--attrs', fx.attrsJsonFile], { cwd: proj });
      assert.equal(r.code, 0, r.stderr);
      // The pinned SDK's warning about its later releases' Node versions is not printed (it came on every command).
      assert.doesNotMatch(d.stderr(), /NodeVersionSupportWarning/);
      // Everything is in the bucket and the database, read without the daemon.
      assert.deepEqual(await publishedPaths(direct), fx.closure);
      await assertStoreMatchesNix(direct, fx.closure);
    } finally {
      await direct.close();
      await d.stop();
      await rm(proj, { recursive: true, force: true });
      await s.drop();
    }
  });

  it('the daemon refuses to start on a missing bucket or an unreachable database, saying which', async () => {
    const s = await freshScaleoutAddr('missing');
    try {
      const noBucket = s.addr.replace(`s3://${s.bucket}/`, 's3://no-such-bucket-here/');
      const r1 = await run(['daemon', '--listen', `unix:${join(tmpdir(), `nx-${process.pid}.sock`)}`, '--store', noBucket], { env: process.env });
      assert.equal(r1.code, 1, r1.stderr);
      assert.match(r1.stderr, /no-such-bucket-here.*does not exist/);
      const deadPg = s.addr.replace(/index=[^&]*/, `index=${encodeURIComponent('postgres://postgres@127.0.0.1:1/nope')}`);
      const r2 = await run(['daemon', '--listen', `unix:${join(tmpdir(), `nx-${process.pid}.sock`)}`, '--store', deadPg], { env: process.env });
      assert.equal(r2.code, 1, r2.stderr);
      assert.match(r2.stderr, /PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/nope/);
    } finally {
      await s.drop();
    }
  });

  it('blobs written by one process are read back by another, small and large', async () => {
    const s = await freshScaleoutAddr('two-processes');
    const a = openStore(sameAddr(s.addr));
    const b = openStore(sameAddr(s.addr));
    try {
      const small = Buffer.from('small blob, packed');
      const large = Buffer.alloc((9 << 20) + 3, 7); // multipart: above one 8 MiB part
      const [ds, dl] = await Promise.all([putBytes(a.blobs, small), putBytes(a.blobs, large)]);
      assert.deepEqual(await readAll(b.blobs, ds), small);
      assert.deepEqual(await readAll(b.blobs, dl), large);
    } finally {
      await a.close();
      await b.close();
      await s.drop();
    }
  });
});

describe('reading packed blobs back', () => {
  it('small blobs written together are read back with a few ranged GETs, not one each; any order, pack ends included', async () => {
    const s = await freshScaleoutAddr('pack-reads');
    const writer = openStore(sameAddr(s.addr));
    const reader = openStore(sameAddr(s.addr));
    try {
      const blobs = Array.from({ length: 300 }, (_, i) => Buffer.from(`blob ${i} `.repeat(1 + (i % 50))));
      const digests = await Promise.all(blobs.map((b) => putBytes(writer.blobs, b)));
      const svc = reader.blobs as S3BlobService;
      const before = svc.s3Requests;
      for (let i = 0; i < blobs.length; i++) assert.deepEqual(await readAll(reader.blobs, digests[i]), blobs[i], `blob ${i}`);
      const sequential = svc.s3Requests - before;
      assert.ok(sequential <= 5, `300 packed blobs read in order took ${sequential} S3 requests`);
      // Backwards, from a fresh reader: still correct (windows start at the blob asked for).
      const back = openStore(sameAddr(s.addr));
      try {
        for (let i = blobs.length - 1; i >= 0; i--) assert.deepEqual(await readAll(back.blobs, digests[i]), blobs[i], `blob ${i} backwards`);
      } finally {
        await back.close();
      }
    } finally {
      await writer.close();
      await reader.close();
      await s.drop();
    }
  });
});
