// Tests of src/server/health.ts against a real grpc-js server, with a health
// client built from the protocol's schema written here.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { addHealthService } from '../../src/server/health.js';
import { addReflectionServices } from '../../src/server/reflection.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const protosDir = path.join(repoRoot, 'protos');

const HEALTH_PROTO = `syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
`;

interface HealthResponse {
  status: string;
}
type HealthClient = grpc.Client & {
  Check(
    req: { service: string },
    cb: (err: grpc.ServiceError | null, res?: HealthResponse) => void,
  ): grpc.ClientUnaryCall;
  Watch(req: { service: string }): grpc.ClientReadableStream<HealthResponse>;
};

describe('health', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'health-test-'));
  let server: grpc.Server;
  let client: HealthClient;
  let health: { setServing(serving: boolean): void };

  before(async () => {
    const files = [
      'tvix/castore/protos/rpc_blobstore.proto',
      'tvix/castore/protos/rpc_directory.proto',
      'tvix/store/protos/rpc_pathinfo.proto',
    ];
    const def = protoLoader.loadSync(files, { includeDirs: [protosDir], keepCase: true });
    server = new grpc.Server();
    // One service registered before the health service, the others after.
    server.addService(def['tvix.castore.v1.BlobService'] as grpc.ServiceDefinition, {});
    health = addHealthService(server);
    server.addService(def['tvix.castore.v1.DirectoryService'] as grpc.ServiceDefinition, {});
    server.addService(def['tvix.store.v1.PathInfoService'] as grpc.ServiceDefinition, {});
    addReflectionServices(server, { includeDir: protosDir, files });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );

    fs.writeFileSync(path.join(tmp, 'health.proto'), HEALTH_PROTO);
    const healthDef = protoLoader.loadSync('health.proto', { includeDirs: [tmp], keepCase: true, enums: String });
    const Ctor = grpc.makeGenericClientConstructor(
      healthDef['grpc.health.v1.Health'] as grpc.ServiceDefinition,
      'Health',
    ) as unknown as new (target: string, creds: grpc.ChannelCredentials) => HealthClient;
    client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await new Promise<void>((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function check(service: string): Promise<string> {
    return new Promise((resolve, reject) =>
      client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res!.status))),
    );
  }

  test('Check("") and every served service answer SERVING', async () => {
    assert.equal(await check(''), 'SERVING');
    for (const name of [
      'tvix.castore.v1.BlobService',
      'tvix.castore.v1.DirectoryService',
      'tvix.store.v1.PathInfoService',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
    ]) {
      assert.equal(await check(name), 'SERVING', name);
    }
  });

  test('unknown service names are NOT_FOUND', async () => {
    await assert.rejects(check('tvix.castore.v1.NoSuchService'), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      return true;
    });
  });

  test('setServing toggles every name, and Watch sees it', async () => {
    const watch = client.Watch({ service: '' });
    const seen: string[] = [];
    const gotTwo = new Promise<void>((resolve) => {
      watch.on('data', (r: HealthResponse) => {
        seen.push(r.status);
        if (seen.length === 1) health.setServing(false);
        if (seen.length === 2) resolve();
      });
    });
    watch.on('error', () => {}); // the cancel below ends the stream with CANCELLED
    await gotTwo;
    watch.cancel();
    assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
    assert.equal(await check(''), 'NOT_SERVING');
    assert.equal(await check('tvix.store.v1.PathInfoService'), 'NOT_SERVING');
    health.setServing(true);
    assert.equal(await check(''), 'SERVING');
    assert.equal(await check('tvix.castore.v1.BlobService'), 'SERVING');
  });
});
