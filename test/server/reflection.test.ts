// End-to-end tests of src/server/reflection.ts: a real grpc-js server with the
// tvix and snix services (stub handlers -> UNIMPLEMENTED), queried by
// `buf curl` (a strict, Go protodesc based client) and by a raw reflection
// client written here.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import descriptorTypes from 'protobufjs/ext/descriptor/index.js';
import { addReflectionServices } from '../../src/server/reflection.js';
import { addHealthService } from '../../src/server/health.js';
import { PROTO_FILES } from '../../src/server/daemon.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const protosDir = path.join(repoRoot, 'protos');
const bufBin = path.join(repoRoot, 'node_modules', '.bin', 'buf');

const PREFIXES = ['tvix', 'snix'] as const;
type Prefix = (typeof PREFIXES)[number];

function protoFiles(p: Prefix): string[] {
  return [
    `${p}/castore/protos/castore.proto`,
    `${p}/castore/protos/rpc_blobstore.proto`,
    `${p}/castore/protos/rpc_directory.proto`,
    `${p}/store/protos/pathinfo.proto`,
    `${p}/store/protos/rpc_pathinfo.proto`,
  ];
}

function services(p: Prefix): string[] {
  return [`${p}.castore.v1.BlobService`, `${p}.castore.v1.DirectoryService`, `${p}.store.v1.PathInfoService`];
}

/** wire.md §2: the nine RPCs. */
function methods(p: Prefix): string[] {
  return [
    `${p}.castore.v1.BlobService/Stat`,
    `${p}.castore.v1.BlobService/Read`,
    `${p}.castore.v1.BlobService/Put`,
    `${p}.castore.v1.DirectoryService/Get`,
    `${p}.castore.v1.DirectoryService/Put`,
    `${p}.store.v1.PathInfoService/Get`,
    `${p}.store.v1.PathInfoService/Put`,
    `${p}.store.v1.PathInfoService/CalculateNAR`,
    `${p}.store.v1.PathInfoService/List`,
  ];
}

interface Running {
  server: grpc.Server;
  port: number;
}

async function startServer(address: string): Promise<Running> {
  const server = new grpc.Server();
  // The daemon's own list of files: what it describes is what is tested.
  const allFiles = PROTO_FILES;
  assert.deepEqual(allFiles, [...PREFIXES.flatMap(protoFiles), 'nixcastore/v1/blob_batch.proto', 'nixcastore/v1/blob_delta.proto', 'nixcastore/v1/blob_from_path.proto', 'nixcastore/v1/stats.proto', 'nixcastore/v1/admin.proto', 'grpc/health/v1/health.proto']);
  const def = protoLoader.loadSync(allFiles, { includeDirs: [protosDir], keepCase: true });
  // grpc.health.v1.Health is added (and implemented) by addHealthService below.
  for (const name of [...PREFIXES.flatMap(services), 'nixcastore.v1.BlobBatchService', 'nixcastore.v1.BlobDeltaService', 'nixcastore.v1.BlobFromPathService', 'nixcastore.v1.StoreStats', 'nixcastore.v1.AdminService']) {
    // No implementation: grpc-js answers every method with UNIMPLEMENTED.
    server.addService(def[name] as grpc.ServiceDefinition, {});
  }
  addReflectionServices(server, { includeDir: protosDir, files: allFiles });
  addHealthService(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port };
}

function stopServer(r: Running | undefined): Promise<void> {
  if (!r) return Promise.resolve();
  return new Promise((resolve) => r.server.tryShutdown(() => resolve()));
}

interface BufResult {
  code: number;
  stdout: string;
  stderr: string;
}

function buf(args: string[]): Promise<BufResult> {
  return new Promise((resolve) => {
    execFile(bufBin, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const BUF_GRPC = ['curl', '--protocol', 'grpc', '--http2-prior-knowledge'];

// ---------------------------------------------------------------------------
// A reflection client of our own: the protocol's schema, written to a temp
// dir and loaded with proto-loader (independent of the server's copy).

function reflectionProto(version: string): string {
  return `syntax = "proto3";
package grpc.reflection.${version};
service ServerReflection {
  rpc ServerReflectionInfo(stream ServerReflectionRequest) returns (stream ServerReflectionResponse);
}
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    ExtensionRequest file_containing_extension = 5;
    string all_extension_numbers_of_type = 6;
    string list_services = 7;
  }
}
message ExtensionRequest { string containing_type = 1; int32 extension_number = 2; }
message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ExtensionNumberResponse all_extension_numbers_response = 5;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ExtensionNumberResponse { string base_type_name = 1; repeated int32 extension_number = 2; }
message ListServiceResponse { repeated ServiceResponse service = 1; }
message ServiceResponse { string name = 1; }
message ErrorResponse { int32 error_code = 1; string error_message = 2; }
`;
}

type ReflectionRequest = Record<string, unknown>;
interface ReflectionResponse {
  valid_host: string;
  original_request: ReflectionRequest | null;
  message_response: string;
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}

interface FieldDesc {
  name: string;
  number: number;
  type: number;
  typeName: string;
  jsonName: string;
  oneofIndex?: number;
}
interface MessageDesc {
  name: string;
  field: FieldDesc[];
  nestedType: MessageDesc[];
  enumType: { name: string; value: { name: string; number: number }[] }[];
  oneofDecl: { name: string }[];
}
interface FileDesc {
  name: string;
  package: string;
  dependency: string[];
  messageType: MessageDesc[];
  enumType: unknown[];
  service: { name: string; method: { name: string; inputType: string; outputType: string; clientStreaming: boolean; serverStreaming: boolean }[] }[];
  options?: { goPackage?: string };
  syntax: string;
}

type DuplexCall = grpc.ClientDuplexStream<ReflectionRequest, ReflectionResponse>;
type ReflectionClient = grpc.Client & { ServerReflectionInfo(): DuplexCall };

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'reflection-test-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const clientCtors = new Map<string, new (target: string, creds: grpc.ChannelCredentials) => ReflectionClient>();

function reflectionClientCtor(version: string) {
  let ctor = clientCtors.get(version);
  if (!ctor) {
    const rel = `grpc/reflection/${version}/reflection.proto`;
    fs.mkdirSync(path.join(tmpRoot, 'protos', path.dirname(rel)), { recursive: true });
    fs.writeFileSync(path.join(tmpRoot, 'protos', rel), reflectionProto(version));
    const def = protoLoader.loadSync(rel, { includeDirs: [path.join(tmpRoot, 'protos')], keepCase: true, oneofs: true, arrays: true });
    const svc = def[`grpc.reflection.${version}.ServerReflection`] as grpc.ServiceDefinition;
    ctor = grpc.makeGenericClientConstructor(svc, 'ServerReflection') as unknown as new (
      target: string,
      creds: grpc.ChannelCredentials,
    ) => ReflectionClient;
    clientCtors.set(version, ctor);
  }
  return ctor;
}

/** Sends all requests on one ServerReflectionInfo stream and collects the answers. */
async function reflect(target: string, version: string, requests: ReflectionRequest[]): Promise<ReflectionResponse[]> {
  const Ctor = reflectionClientCtor(version);
  const client = new Ctor(target, grpc.credentials.createInsecure());
  try {
    const call = client.ServerReflectionInfo();
    const responses: ReflectionResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (r: ReflectionResponse) => responses.push(r));
      call.on('end', () => resolve());
      call.on('error', reject);
    });
    for (const r of requests) call.write({ host: 'localhost', ...r });
    call.end();
    await done;
    return responses;
  } finally {
    client.close();
  }
}

function decodeFiles(r: ReflectionResponse): FileDesc[] {
  assert.equal(r.message_response, 'file_descriptor_response', JSON.stringify(r.error_response));
  return r.file_descriptor_response!.file_descriptor_proto.map(
    (b) =>
      descriptorTypes.FileDescriptorProto.toObject(descriptorTypes.FileDescriptorProto.decode(b), {
        arrays: true,
      }) as FileDesc,
  );
}

function byName<T extends { name: string }>(list: T[], name: string): T {
  const found = list.find((x) => x.name === name);
  assert.ok(found, `${name} not found among ${list.map((x) => x.name).join(', ')}`);
  return found;
}

// ---------------------------------------------------------------------------

describe('reflection over TCP', () => {
  let running: Running | undefined;
  let target = '';

  before(async () => {
    running = await startServer('127.0.0.1:0');
    target = `127.0.0.1:${running.port}`;
  });
  after(() => stopServer(running));

  for (const reflectProtocol of ['grpc-v1', 'grpc-v1alpha']) {
    test(`buf curl --list-methods (${reflectProtocol}) lists every tvix, snix and nixcastore method`, async () => {
      const r = await buf([...BUF_GRPC, '--reflect-protocol', reflectProtocol, '--list-methods', `http://${target}`]);
      assert.equal(r.code, 0, r.stderr);
      const listed = new Set(r.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
      const all = [
        ...PREFIXES.flatMap(methods),
        'nixcastore.v1.BlobBatchService/Has',
        'nixcastore.v1.BlobBatchService/Put',
        'nixcastore.v1.BlobDeltaService/FindBase',
        'nixcastore.v1.BlobDeltaService/Put',
        'nixcastore.v1.BlobFromPathService/Put',
        'nixcastore.v1.StoreStats/Get',
        'grpc.health.v1.Health/Check',
        'grpc.health.v1.Health/Watch',
        'grpc.health.v1.Health/List',
        ...['SetPin', 'RemovePin', 'ListPins', 'CollectGarbage', 'CollectGarbageWithProgress'].map((m) => `nixcastore.v1.AdminService/${m}`),
      ];
      for (const m of all) assert.ok(listed.has(m), `${m} missing from:\n${r.stdout}`);
    });
  }

  for (const p of PREFIXES) {
    test(`buf curl calls ${p} CalculateNAR, whose request type lives in castore.proto`, async () => {
      // buf must resolve rpc_pathinfo.proto -> castore.proto to even encode
      // the request; the stub's UNIMPLEMENTED proves it got that far.
      const url = `http://${target}/${p}.store.v1.PathInfoService/CalculateNAR`;
      for (const data of ['{}', '{"file":{"name":"YQ==","digest":"","size":"3","executable":true}}']) {
        const r = await buf([...BUF_GRPC, '-d', data, url]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /unimplemented/i, r.stderr);
      }
    });
  }

  test('every served descriptor equals what buf compiles from protos/', async () => {
    const image = path.join(tmpRoot, 'image.binpb');
    const built = await buf(['build', protosDir, '--exclude-source-info', '-o', image]);
    assert.equal(built.code, 0, built.stderr);
    const set = descriptorTypes.FileDescriptorSet.toObject(
      descriptorTypes.FileDescriptorSet.decode(fs.readFileSync(image)),
      { arrays: true },
    ) as { file: FileDesc[] };
    assert.equal(set.file.length, 16);
    const responses = await reflect(target, 'v1', set.file.map((f) => ({ file_by_filename: f.name })));
    responses.forEach((res, i) => assert.deepEqual(decodeFiles(res)[0], set.file[i], set.file[i].name));
  });

  for (const version of ['v1', 'v1alpha']) {
    test(`${version}: file_by_filename returns the file with its real imports, plus those files`, async () => {
      const [res] = await reflect(target, version, [{ file_by_filename: 'tvix/store/protos/rpc_pathinfo.proto' }]);
      assert.equal(res.valid_host, 'localhost');
      assert.equal(res.original_request?.file_by_filename, 'tvix/store/protos/rpc_pathinfo.proto');
      const files = decodeFiles(res);
      assert.equal(files[0].name, 'tvix/store/protos/rpc_pathinfo.proto');
      assert.deepEqual(files[0].dependency, ['tvix/castore/protos/castore.proto', 'tvix/store/protos/pathinfo.proto']);
      assert.deepEqual(files.map((f) => f.name).sort(), [
        'tvix/castore/protos/castore.proto',
        'tvix/store/protos/pathinfo.proto',
        'tvix/store/protos/rpc_pathinfo.proto',
      ]);
      const rpc = files[0];
      assert.equal(rpc.package, 'tvix.store.v1');
      assert.equal(rpc.syntax, 'proto3');
      assert.equal(rpc.options?.goPackage, 'code.tvl.fyi/tvix/store-go;storev1');
      const svc = byName(rpc.service, 'PathInfoService');
      assert.deepEqual(
        svc.method.map((m) => [m.name, m.inputType, m.outputType, Boolean(m.clientStreaming), Boolean(m.serverStreaming)]),
        [
          ['Get', '.tvix.store.v1.GetPathInfoRequest', '.tvix.store.v1.PathInfo', false, false],
          ['Put', '.tvix.store.v1.PathInfo', '.tvix.store.v1.PathInfo', false, false],
          ['CalculateNAR', '.tvix.castore.v1.Node', '.tvix.store.v1.CalculateNARResponse', false, false],
          ['List', '.tvix.store.v1.ListPathInfoRequest', '.tvix.store.v1.PathInfo', false, true],
        ],
      );
      // Messages of the other files are not merged into this one.
      assert.equal(rpc.messageType.find((m) => m.name === 'PathInfo'), undefined);

      const pathinfo = byName(files, 'tvix/store/protos/pathinfo.proto');
      assert.deepEqual(pathinfo.dependency, ['tvix/castore/protos/castore.proto']);
      const node = byName(byName(pathinfo.messageType, 'PathInfo').field, 'node');
      assert.equal(node.typeName, '.tvix.castore.v1.Node');
      const narinfo = byName(pathinfo.messageType, 'NARInfo');
      const narSize = byName(narinfo.field, 'nar_size');
      assert.equal(narSize.jsonName, 'narSize');
      const ca = byName(narinfo.nestedType, 'CA');
      assert.equal(byName(ca.field, 'type').typeName, '.tvix.store.v1.NARInfo.CA.Hash');
      assert.deepEqual(byName(ca.enumType, 'Hash').value[0], { name: 'NAR_SHA256', number: 0 });

      const castore = byName(files, 'tvix/castore/protos/castore.proto');
      assert.deepEqual(castore.dependency, []);
      const nodeMsg = byName(castore.messageType, 'Node');
      assert.deepEqual(nodeMsg.oneofDecl, [{ name: 'node' }]);
      assert.deepEqual(nodeMsg.field.map((f) => [f.name, f.oneofIndex]), [['directory', 0], ['file', 0], ['symlink', 0]]);
    });

    test(`${version}: file_by_filename for every served file, snix included`, async () => {
      const expected: Record<string, string[]> = {};
      for (const p of PREFIXES) {
        expected[`${p}/castore/protos/castore.proto`] = [];
        expected[`${p}/castore/protos/rpc_blobstore.proto`] = [];
        expected[`${p}/castore/protos/rpc_directory.proto`] = [`${p}/castore/protos/castore.proto`];
        expected[`${p}/store/protos/pathinfo.proto`] = [`${p}/castore/protos/castore.proto`];
        expected[`${p}/store/protos/rpc_pathinfo.proto`] = [`${p}/castore/protos/castore.proto`, `${p}/store/protos/pathinfo.proto`];
      }
      const names = Object.keys(expected);
      const responses = await reflect(target, version, names.map((n) => ({ file_by_filename: n })));
      assert.equal(responses.length, names.length);
      responses.forEach((res, i) => {
        const files = decodeFiles(res);
        assert.equal(files[0].name, names[i]);
        assert.deepEqual(files[0].dependency, expected[names[i]]);
        // Every import is shipped along, each file once.
        const shipped = files.map((f) => f.name);
        assert.equal(new Set(shipped).size, shipped.length);
        for (const dep of expected[names[i]]) assert.ok(shipped.includes(dep), `${dep} not shipped with ${names[i]}`);
      });
    });

    test(`${version}: file_containing_symbol finds services, methods, messages, nested types, enums`, async () => {
      const cases: [string, string][] = [
        ['tvix.castore.v1.BlobService', 'tvix/castore/protos/rpc_blobstore.proto'],
        ['tvix.castore.v1.DirectoryService.Get', 'tvix/castore/protos/rpc_directory.proto'],
        ['tvix.store.v1.PathInfoService', 'tvix/store/protos/rpc_pathinfo.proto'],
        ['tvix.store.v1.PathInfoService.CalculateNAR', 'tvix/store/protos/rpc_pathinfo.proto'],
        ['tvix.castore.v1.Node', 'tvix/castore/protos/castore.proto'],
        ['tvix.castore.v1.StatBlobResponse.ChunkMeta', 'tvix/castore/protos/rpc_blobstore.proto'],
        ['tvix.store.v1.NARInfo.Signature', 'tvix/store/protos/pathinfo.proto'],
        ['tvix.store.v1.NARInfo.CA.Hash', 'tvix/store/protos/pathinfo.proto'],
        ['tvix.store.v1.NARInfo.CA.NAR_SHA256', 'tvix/store/protos/pathinfo.proto'],
        ['tvix.store.v1.PathInfo.narinfo', 'tvix/store/protos/pathinfo.proto'],
        ['snix.store.v1.PathInfoService.CalculateNAR', 'snix/store/protos/rpc_pathinfo.proto'],
        ['snix.castore.v1.Directory', 'snix/castore/protos/castore.proto'],
        [`grpc.reflection.${version}.ServerReflection`, `grpc/reflection/${version}/reflection.proto`],
      ];
      const responses = await reflect(target, version, cases.map(([s]) => ({ file_containing_symbol: s })));
      responses.forEach((res, i) => assert.equal(decodeFiles(res)[0].name, cases[i][1], cases[i][0]));
    });

    test(`${version}: list_services and errors`, async () => {
      const [list, unknownSymbol, unknownFile, ext, extNums] = await reflect(target, version, [
        { list_services: '*' },
        { file_containing_symbol: 'tvix.castore.v1.NoSuchThing' },
        { file_by_filename: 'tvix/nope.proto' },
        { file_containing_extension: { containing_type: 'tvix.castore.v1.Node', extension_number: 100 } },
        { all_extension_numbers_of_type: 'tvix.castore.v1.Node' },
      ]);
      assert.equal(list.message_response, 'list_services_response');
      const listed = list.list_services_response!.service.map((s) => s.name);
      for (const p of PREFIXES) for (const s of services(p)) assert.ok(listed.includes(s), `${s} not listed`);
      assert.ok(listed.includes(`grpc.reflection.${version}.ServerReflection`));
      assert.ok(listed.includes('grpc.health.v1.Health'), 'Health is listed, with its descriptor');

      for (const r of [unknownSymbol, unknownFile, ext]) {
        assert.equal(r.message_response, 'error_response');
        assert.equal(r.error_response?.error_code, grpc.status.NOT_FOUND);
      }
      assert.equal(extNums.message_response, 'all_extension_numbers_response');
      assert.equal(extNums.all_extension_numbers_response?.base_type_name, 'tvix.castore.v1.Node');
      assert.deepEqual(extNums.all_extension_numbers_response?.extension_number, []);
    });
  }
});

describe('reflection over a unix socket', () => {
  let running: Running | undefined;
  const sock = path.join(tmpRoot, 'daemon.sock');

  before(async () => {
    running = await startServer(`unix:${sock}`);
  });
  after(() => stopServer(running));

  test('buf curl --unix-socket lists the methods and calls CalculateNAR', async () => {
    const list = await buf([...BUF_GRPC, '--unix-socket', sock, '--list-methods', 'http://localhost']);
    assert.equal(list.code, 0, list.stderr);
    for (const p of PREFIXES) for (const m of methods(p)) assert.ok(list.stdout.includes(m), `${m} missing`);

    const call = await buf([
      ...BUF_GRPC,
      '--unix-socket',
      sock,
      '-d',
      '{}',
      'http://localhost/tvix.store.v1.PathInfoService/CalculateNAR',
    ]);
    assert.notEqual(call.code, 0);
    assert.match(call.stderr, /unimplemented/i, call.stderr);
  });

  test('raw reflection over the socket', async () => {
    const [res] = await reflect(`unix:${sock}`, 'v1', [{ file_by_filename: 'tvix/store/protos/rpc_pathinfo.proto' }]);
    assert.deepEqual(decodeFiles(res)[0].dependency, [
      'tvix/castore/protos/castore.proto',
      'tvix/store/protos/pathinfo.proto',
    ]);
  });
});
