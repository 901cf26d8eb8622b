// grpc+https:// over the lean client: TLS with ALPN h2 and the default CAs
// (a self-signed server is refused; trusted through NODE_EXTRA_CA_CERTS,
// which Node reads at start-up, it works in a child process).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { execFileSync, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { GrpcBlobService } from '../../src/grpc/backends/grpc-blob-service.js';
import { isKind } from '../../src/castore/errors.js';
import { EMPTY_DIGEST } from '../helpers/castore-fixtures.js';

const SERVICE = fileURLToPath(new URL('../../src/grpc/backends/grpc-blob-service.js', import.meta.url));

let openssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  openssl = false;
}

describe('lean gRPC client over TLS', { skip: !openssl && 'needs openssl' }, () => {
  let tmp: string;
  let server: http2.Http2SecureServer;
  let port: number;
  const seen: { authority?: string; alpn?: string | false | null; servername?: string | false | null }[] = [];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'castore-h2-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem'),
    ], { stdio: 'ignore' });
    server = http2.createSecureServer({ key: await readFile(join(tmp, 'key.pem')), cert: await readFile(join(tmp, 'cert.pem')) });
    server.on('stream', (stream, headers) => {
      const socket = stream.session?.socket as TLSSocket | undefined;
      seen.push({ authority: headers[':authority'], alpn: socket?.alpnProtocol, servername: socket?.servername });
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5' }, { endStream: true });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise((r) => server?.close(r));
    await rm(tmp, { recursive: true, force: true });
  });

  it("refuses a certificate the default CAs do not vouch for: 'unavailable'", async () => {
    const blobs = new GrpcBlobService(`grpc+https://localhost:${port}`);
    try {
      await assert.rejects(blobs.stat(EMPTY_DIGEST), (err) => isKind(err, 'unavailable') && /self[- ]signed/.test((err as Error).message));
    } finally {
      await blobs.close();
    }
  });

  it('speaks h2 (ALPN) with SNI and :authority host:port to a trusted server', async () => {
    const script = `
      const { GrpcBlobService } = await import(${JSON.stringify(SERVICE)});
      const blobs = new GrpcBlobService('grpc+https://localhost:${port}');
      console.log(String(await blobs.stat(new Uint8Array(32))));
      await blobs.close();`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(tmp, 'cert.pem') },
    });
    assert.equal(stdout.trim(), 'undefined', 'NOT_FOUND → absent');
    assert.deepEqual(seen.at(-1), { authority: `localhost:${port}`, alpn: 'h2', servername: 'localhost' });
  });
});
