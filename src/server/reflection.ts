// gRPC server reflection (grpc.reflection.v1 and grpc.reflection.v1alpha).
//
// Why this does not use @grpc/reflection
// --------------------------------------
// @grpc/reflection is fed a proto-loader PackageDefinition and serves the
// `fileDescriptorProtos` proto-loader attached to it. Those come from
// protobufjs' `Root#toDescriptor`, which
//   * emits one synthetic file per *package*, not per .proto file: our five
//     tvix files become `tvix_castore_v1.proto` and `tvix_store_v1.proto`, so
//     `file_by_filename("tvix/store/protos/rpc_pathinfo.proto")` is NOT_FOUND;
//   * never fills `FileDescriptorProto.dependency` (protobufjs documents the
//     field as "not supported");
//   * writes scope-relative type names (`castore.v1.Node`).
// @grpc/reflection only infers a private side graph from type references to
// decide which extra descriptors to send; the descriptors themselves keep an
// empty import list. Clients that build a validated registry from them (Go's
// protodesc, used by grpcurl and `buf curl`) then reject rpc_pathinfo.proto,
// since it uses `tvix.castore.v1.Node` from a file it does not import.
//
// Handing @grpc/reflection hand-made descriptors would still leave its
// inferred dependency graph, its PackageDefinition-shaped input and its own
// proto-loader copy in the path. The reflection protocol itself is small, so
// we parse the .proto files with protobufjs (which resolves types), build one
// FileDescriptorProto per source file named by its import path, with the
// file's real `import`s as `dependency`, fully-qualified type names and the
// file's own options, and answer the five reflection requests ourselves.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { REFLECTION_VERSIONS, reflectionFileName, reflectionProtoSource, type ReflectionVersion } from './reflection-protocol.js';
import { DescriptorPool } from './descriptor-pool.js';
import type { Obj } from './descriptor-parts.js';

// ---------------------------------------------------------------------------
// The ServerReflectionInfo stream.

interface ReflectionRequest extends protobuf.Message {
  host?: string;
  messageRequest?: string;
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType?: string; extensionNumber?: number };
  allExtensionNumbersOfType?: string;
  listServices?: string;
}

function answer(pool: DescriptorPool, req: ReflectionRequest): Obj {
  const res: Obj = { validHost: req.host ?? '', originalRequest: req };
  const fail = (code: grpc.status, message: string): Obj => ({
    ...res,
    errorResponse: { errorCode: code, errorMessage: message },
  });
  switch (req.messageRequest) {
    case 'fileByFilename': {
      const name = req.fileByFilename ?? '';
      if (!pool.has(name)) return fail(grpc.status.NOT_FOUND, `file not found: ${name}`);
      return { ...res, fileDescriptorResponse: { fileDescriptorProto: pool.withDependencies(name) } };
    }
    case 'fileContainingSymbol': {
      const symbol = req.fileContainingSymbol ?? '';
      const file = pool.fileOfSymbol(symbol);
      if (file === undefined) return fail(grpc.status.NOT_FOUND, `symbol not found: ${symbol}`);
      return { ...res, fileDescriptorResponse: { fileDescriptorProto: pool.withDependencies(file) } };
    }
    case 'fileContainingExtension': {
      const ext = req.fileContainingExtension;
      return fail(
        grpc.status.NOT_FOUND,
        `extension not found: ${ext?.containingType ?? ''} field ${ext?.extensionNumber ?? 0}`,
      );
    }
    case 'allExtensionNumbersOfType': {
      const type = req.allExtensionNumbersOfType ?? '';
      if (!pool.isMessage(type)) return fail(grpc.status.NOT_FOUND, `message type not found: ${type}`);
      return { ...res, allExtensionNumbersResponse: { baseTypeName: type.replace(/^\./, ''), extensionNumber: [] } };
    }
    case 'listServices':
      return { ...res, listServicesResponse: { service: pool.serviceNames.map((name) => ({ name })) } };
    default:
      return fail(grpc.status.INVALID_ARGUMENT, 'empty or unknown reflection request');
  }
}

function reflectionServiceDefinition(version: ReflectionVersion): grpc.ServiceDefinition {
  // Default parse options: camelCase field names and oneof virtual properties.
  const { root } = protobuf.parse(reflectionProtoSource(version), new protobuf.Root());
  root.resolveAll();
  const Request = root.lookupType(`grpc.reflection.${version}.ServerReflectionRequest`);
  const Response = root.lookupType(`grpc.reflection.${version}.ServerReflectionResponse`);
  const method: grpc.MethodDefinition<ReflectionRequest, Obj> = {
    path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m) => Buffer.from(Request.encode(Request.fromObject(m)).finish()),
    requestDeserialize: (b) => Request.decode(b) as ReflectionRequest,
    responseSerialize: (m) => Buffer.from(Response.encode(Response.fromObject(m)).finish()),
    responseDeserialize: (b) => Response.toObject(Response.decode(b)),
    originalName: 'serverReflectionInfo',
  };
  return { ServerReflectionInfo: method };
}

/** Maps an entry of `files` (import path, or absolute path below includeDir) to its import path. */
function importPath(includeDir: string, file: string): string {
  let rel = file;
  if (path.isAbsolute(file)) {
    rel = path.relative(includeDir, file);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new Error(`reflection: ${file} is not below the include directory ${includeDir}`);
    }
  }
  return rel.split(path.sep).join('/');
}

/**
 * Registers `grpc.reflection.v1.ServerReflection` and
 * `grpc.reflection.v1alpha.ServerReflection` on `server`, describing `files`
 * (import paths relative to `includeDir`, e.g.
 * `tvix/store/protos/rpc_pathinfo.proto`), their imports, and the reflection
 * protocol's own files. Descriptors are built eagerly: a missing file or an
 * unresolvable type throws here, not on the first request.
 */
export function addReflectionServices(server: grpc.Server, opts: { includeDir: string; files: string[] }): void {
  const includeDir = path.resolve(opts.includeDir);
  const embedded = new Map<string, string>(
    REFLECTION_VERSIONS.map((v) => [reflectionFileName(v), reflectionProtoSource(v)]),
  );
  const pool = new DescriptorPool((name) => {
    const full = path.resolve(includeDir, name);
    if (fs.existsSync(full)) return fs.readFileSync(full, 'utf8');
    const builtin = embedded.get(name);
    if (builtin !== undefined) return builtin;
    throw new Error(`reflection: ${name} not found in ${includeDir}`);
  });
  for (const file of opts.files) pool.load(importPath(includeDir, file));
  for (const name of embedded.keys()) pool.load(name);
  pool.build();

  for (const version of REFLECTION_VERSIONS) {
    server.addService(reflectionServiceDefinition(version), {
      ServerReflectionInfo: (call: grpc.ServerDuplexStream<ReflectionRequest, Obj>) => {
        call.on('data', (req: ReflectionRequest) => {
          call.write(answer(pool, req));
        });
        call.on('end', () => call.end());
        // A cancelled or broken stream needs no answer; keep it from being unhandled.
        call.on('error', () => {});
      },
    });
  }
}
