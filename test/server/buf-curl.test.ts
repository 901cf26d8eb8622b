// The acceptance check with a strict third-party client: `buf curl`
// resolves the schema through the daemon's reflection, lists every tvix
// method, puts the bytes "x86_64-linux" and reads them back — via tvix.* and
// snix.* paths, against the real daemon process on a unix socket — and
// calls grpc.health.v1.Health and nixcastore.v1.StoreStats the same way.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';

const run = promisify(execFile);
const BUF = fileURLToPath(new URL('../../../node_modules/.bin/buf', import.meta.url));
const X86 = Buffer.from('x86_64-linux').toString('base64');
const X86_DIGEST = 'KOM3/IHEx7YfInAnlJpAElYezq0Sxn9fRz7xuClwNfA=';

let daemon: DaemonProcess;

async function buf(...args: string[]): Promise<string> {
  const { stdout } = await run(BUF, ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--unix-socket', daemon.socket, ...args], { timeout: 60_000 });
  return stdout;
}

before(async () => {
  daemon = await startDaemonProcess();
});
after(() => daemon.stop());

describe('buf curl against the daemon', () => {
  it('lists every tvix and snix method through reflection', async () => {
    const out = (await buf('--list-methods', 'http://localhost')).split('\n');
    for (const pkg of ['tvix', 'snix']) {
      for (const m of ['castore.v1.BlobService/Stat', 'castore.v1.BlobService/Read', 'castore.v1.BlobService/Put', 'castore.v1.DirectoryService/Get', 'castore.v1.DirectoryService/Put', 'store.v1.PathInfoService/Get', 'store.v1.PathInfoService/Put', 'store.v1.PathInfoService/CalculateNAR', 'store.v1.PathInfoService/List']) {
        assert.ok(out.includes(`${pkg}.${m}`), `${pkg}.${m} listed`);
      }
    }
  });

  for (const pkg of ['tvix', 'snix']) {
    it(`${pkg}: BlobService/Put of "x86_64-linux" answers the spec digest, Read returns the bytes`, async () => {
      const put = JSON.parse(await buf('-d', JSON.stringify({ data: X86 }), `http://localhost/${pkg}.castore.v1.BlobService/Put`));
      assert.equal(put.digest, X86_DIGEST);
      const read = await buf('-d', JSON.stringify({ digest: X86_DIGEST }), `http://localhost/${pkg}.castore.v1.BlobService/Read`);
      const data = Buffer.concat(
        read
          .trim()
          .split(/\n(?=\{)/)
          .map((m) => Buffer.from(JSON.parse(m).data ?? '', 'base64')),
      );
      assert.equal(data.toString(), 'x86_64-linux');
    });
  }

  it('lists grpc.health.v1.Health and calls Health/Check through reflection', async () => {
    const services = (await buf('--list-services', 'http://localhost')).split('\n');
    assert.ok(services.includes('grpc.health.v1.Health'), services.join(' '));
    assert.deepEqual(JSON.parse(await buf('-d', '{}', 'http://localhost/grpc.health.v1.Health/Check')), { status: 'SERVING' });
    assert.deepEqual(JSON.parse(await buf('-d', JSON.stringify({ service: 'tvix.castore.v1.BlobService' }), 'http://localhost/grpc.health.v1.Health/Check')), { status: 'SERVING' });
    await assert.rejects(buf('-d', JSON.stringify({ service: 'no.such.Service' }), 'http://localhost/grpc.health.v1.Health/Check'), (err: Error & { stderr?: string }) =>
      /not[_ ]found/i.test(err.stderr ?? err.message),
    );
  });

  it('nixcastore.v1.StoreStats/Get through reflection counts the store', async () => {
    const s = JSON.parse(await buf('-d', '{}', 'http://localhost/nixcastore.v1.StoreStats/Get'));
    assert.equal(s.blobs, '1', 'the blob put above (uint64 is a JSON string)');
    assert.equal(s.blobBytes, String('x86_64-linux'.length));
  });

  it('reports a missing PathInfo as NOT_FOUND through buf', async () => {
    await assert.rejects(
      buf('-d', JSON.stringify({ byOutputHash: Buffer.alloc(20).toString('base64') }), 'http://localhost/tvix.store.v1.PathInfoService/Get'),
      (err: Error & { stderr?: string }) => /not[_ ]found/i.test(err.stderr ?? err.message),
    );
  });
});
