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
import descriptorTypes from 'protobufjs/ext/descriptor/index.js';

type Obj = Record<string, unknown>;

// ---------------------------------------------------------------------------
// The reflection protocol's own schema (grpc/reflection/{v1,v1alpha}/reflection.proto).
// The two versions are wire-identical and differ only in the package name.

const REFLECTION_VERSIONS = ['v1', 'v1alpha'] as const;
type ReflectionVersion = (typeof REFLECTION_VERSIONS)[number];

function reflectionFileName(version: ReflectionVersion): string {
  return `grpc/reflection/${version}/reflection.proto`;
}

function reflectionProtoSource(version: ReflectionVersion): string {
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

message ExtensionRequest {
  string containing_type = 1;
  int32 extension_number = 2;
}

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

message FileDescriptorResponse {
  repeated bytes file_descriptor_proto = 1;
}

message ExtensionNumberResponse {
  string base_type_name = 1;
  repeated int32 extension_number = 2;
}

message ListServiceResponse {
  repeated ServiceResponse service = 1;
}

message ServiceResponse {
  string name = 1;
}

message ErrorResponse {
  int32 error_code = 1;
  string error_message = 2;
}
`;
}

// ---------------------------------------------------------------------------
// Descriptor pool: .proto sources -> one encoded FileDescriptorProto per file.

const PARSE_OPTIONS: protobuf.IParseOptions = { keepCase: true };

const SCALAR_TYPES: Record<string, string> = {
  double: 'TYPE_DOUBLE',
  float: 'TYPE_FLOAT',
  int64: 'TYPE_INT64',
  uint64: 'TYPE_UINT64',
  int32: 'TYPE_INT32',
  fixed64: 'TYPE_FIXED64',
  fixed32: 'TYPE_FIXED32',
  bool: 'TYPE_BOOL',
  string: 'TYPE_STRING',
  bytes: 'TYPE_BYTES',
  uint32: 'TYPE_UINT32',
  sfixed32: 'TYPE_SFIXED32',
  sfixed64: 'TYPE_SFIXED64',
  sint32: 'TYPE_SINT32',
  sint64: 'TYPE_SINT64',
};

/** Option names protobufjs keeps in `options` that are not descriptor options. */
const NON_DESCRIPTOR_OPTIONS = new Set(['default', 'json_name', 'proto3_optional', 'features', 'map_entry']);

interface SourceFile {
  name: string;
  pkg: string;
  dependency: string[];
  weakDependency: number[];
  syntax: 'proto2' | 'proto3';
  options: Obj | undefined;
}

/** `foo_bar` -> `fooBar`, as protoc computes `json_name`. */
function jsonName(name: string): string {
  let out = '';
  let upper = false;
  for (const c of name) {
    if (c === '_') upper = true;
    else if (upper) {
      out += c.toUpperCase();
      upper = false;
    } else out += c;
  }
  return out;
}

/** `foo_bar` -> `FooBarEntry`, as protoc names map entry messages. */
function mapEntryName(fieldName: string): string {
  let out = '';
  let upper = true;
  for (const c of fieldName) {
    if (c === '_') upper = true;
    else if (upper) {
      out += c.toUpperCase();
      upper = false;
    } else out += c;
  }
  return out + 'Entry';
}

function snakeToCamel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/**
 * Keeps the options of a protobufjs object that the given descriptor options
 * message (FileOptions, FieldOptions, ...) knows; custom `(ext)` options and
 * protobufjs-internal entries are dropped.
 */
function descriptorOptions(options: Obj | undefined, optionsType: protobuf.Type, extra?: Obj): Obj | undefined {
  const out: Obj = { ...extra };
  for (const [key, value] of Object.entries(options ?? {})) {
    if (key.startsWith('(') || NON_DESCRIPTOR_OPTIONS.has(key)) continue;
    const camel = snakeToCamel(key);
    if (optionsType.fields[camel] !== undefined) out[camel] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Skips leading whitespace and comments, then reads the `syntax`/`edition` statement. */
function fileSyntax(source: string, name: string): 'proto2' | 'proto3' {
  const head = source.replace(/^(?:\s+|\/\/[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/, '');
  const m = /^(syntax|edition)\s*=\s*(["'])([^"']*)\2/.exec(head);
  if (!m) return 'proto2';
  if (m[1] === 'syntax' && (m[3] === 'proto2' || m[3] === 'proto3')) return m[3];
  throw new Error(`reflection: ${name}: unsupported ${m[1]} "${m[3]}" (only proto2 and proto3 are supported)`);
}

function fqn(obj: protobuf.ReflectionObject): string {
  return obj.fullName.replace(/^\./, '');
}

class DescriptorPool {
  private readonly root = new protobuf.Root();
  /** Source files in load order (dependencies before dependents). */
  private readonly sources = new Map<string, SourceFile>();
  private readonly encoded = new Map<string, Uint8Array>();
  /** Fully-qualified symbol (no leading dot) -> defining file. */
  private readonly symbols = new Map<string, string>();
  /** Fully-qualified message names, for all_extension_numbers_of_type. */
  private readonly messages = new Set<string>();
  readonly serviceNames: string[] = [];

  constructor(private readonly readSource: (name: string) => string) {}

  load(name: string, importedBy: string[] = []): void {
    if (this.sources.has(name)) return;
    if (importedBy.includes(name)) {
      throw new Error(`reflection: import cycle: ${[...importedBy, name].join(' -> ')}`);
    }
    const source = this.readSource(name);
    const syntax = fileSyntax(source, name);
    // A private parse tells us what belongs to this file alone: package,
    // imports and file-level options (the shared root below merges the
    // options of all files of one package into one namespace).
    const own = protobuf.parse(source, new protobuf.Root(), PARSE_OPTIONS);
    const imports = own.imports ?? [];
    const weakImports = own.weakImports ?? [];
    for (const dep of [...imports, ...weakImports]) this.load(dep, [...importedBy, name]);

    const pkg = own.package ?? '';
    const ownNs = pkg ? own.root.lookup(pkg) : own.root;
    // Parse into the shared root so that cross-file references resolve;
    // protobufjs stamps every definition with `parse.filename`.
    (protobuf.parse as unknown as { filename: string | null }).filename = name;
    protobuf.parse(source, this.root, PARSE_OPTIONS);
    this.sources.set(name, {
      name,
      pkg,
      dependency: [...imports, ...weakImports],
      weakDependency: weakImports.map((_w, i) => imports.length + i),
      syntax,
      options: ownNs?.options as Obj | undefined,
    });
  }

  /** Resolves all references and encodes the descriptors. Call once after load(). */
  build(): void {
    this.root.resolveAll();
    for (const src of this.sources.values()) {
      const file = this.fileDescriptor(src);
      const msg = descriptorTypes.FileDescriptorProto.fromObject(file);
      this.encoded.set(src.name, descriptorTypes.FileDescriptorProto.encode(msg).finish());
    }
  }

  has(name: string): boolean {
    return this.encoded.has(name);
  }

  fileOfSymbol(symbol: string): string | undefined {
    return this.symbols.get(symbol.replace(/^\./, ''));
  }

  isMessage(symbol: string): boolean {
    return this.messages.has(symbol.replace(/^\./, ''));
  }

  /** The file followed by its transitive dependencies (breadth-first, each once). */
  withDependencies(name: string): Uint8Array[] {
    const order: string[] = [name];
    for (let i = 0; i < order.length; i++) {
      for (const dep of this.sources.get(order[i])?.dependency ?? []) {
        if (!order.includes(dep)) order.push(dep);
      }
    }
    return order.map((n) => this.encoded.get(n)!);
  }

  private index(symbol: string, file: string): void {
    if (!this.symbols.has(symbol)) this.symbols.set(symbol, file);
  }

  private fileDescriptor(src: SourceFile): Obj {
    const ns = src.pkg ? this.root.lookup(src.pkg) : this.root;
    const messageType: Obj[] = [];
    const enumType: Obj[] = [];
    const service: Obj[] = [];
    if (ns instanceof protobuf.Namespace) {
      for (const obj of ns.nestedArray) {
        if (obj.filename !== src.name) continue;
        if (obj instanceof protobuf.Type) messageType.push(this.messageDescriptor(obj, src));
        else if (obj instanceof protobuf.Enum) enumType.push(this.enumDescriptor(obj, src.pkg, src.name));
        else if (obj instanceof protobuf.Service) service.push(this.serviceDescriptor(obj, src.name));
        else if (obj instanceof protobuf.Field) {
          throw new Error(`reflection: ${src.name}: top-level extensions are not supported`);
        }
      }
    }
    const file: Obj = {
      name: src.name,
      dependency: src.dependency,
      messageType,
      enumType,
      service,
    };
    if (src.pkg) file.package = src.pkg;
    if (src.weakDependency.length > 0) file.weakDependency = src.weakDependency;
    const options = descriptorOptions(src.options, descriptorTypes.FileOptions);
    if (options) file.options = options;
    // protoc leaves `syntax` empty for proto2.
    if (src.syntax === 'proto3') file.syntax = 'proto3';
    return file;
  }

  private messageDescriptor(type: protobuf.Type, src: SourceFile): Obj {
    const name = fqn(type);
    this.index(name, src.name);
    this.messages.add(name);

    // Real oneofs first, then proto3-optional synthetic ones (protoc's order).
    const isSynthetic = (o: protobuf.OneOf) =>
      o.fieldsArray.length === 1 && o.fieldsArray[0].options?.proto3_optional === true;
    const oneofs = [
      ...type.oneofsArray.filter((o) => !isSynthetic(o)),
      ...type.oneofsArray.filter((o) => isSynthetic(o)),
    ];
    for (const o of oneofs) this.index(`${name}.${o.name}`, src.name);

    const nestedType: Obj[] = [];
    const enumType: Obj[] = [];
    const field: Obj[] = [];
    for (const f of type.fieldsArray) {
      this.index(`${name}.${f.name}`, src.name);
      field.push(this.fieldDescriptor(f, type, oneofs, nestedType, src));
    }
    for (const obj of type.nestedArray) {
      if (obj instanceof protobuf.Type) nestedType.push(this.messageDescriptor(obj, src));
      else if (obj instanceof protobuf.Enum) enumType.push(this.enumDescriptor(obj, name, src.name));
      else if (obj instanceof protobuf.Field) {
        throw new Error(`reflection: ${src.name}: extensions (in ${name}) are not supported`);
      }
    }

    const msg: Obj = { name: type.name, field, nestedType, enumType, oneofDecl: oneofs.map((o) => ({ name: o.name })) };
    const reservedRange: Obj[] = [];
    const reservedName: string[] = [];
    for (const r of type.reserved ?? []) {
      // protobufjs ranges are inclusive, descriptor ranges end-exclusive.
      if (typeof r === 'string') reservedName.push(r);
      else reservedRange.push({ start: r[0], end: r[1] + 1 });
    }
    if (reservedRange.length > 0) msg.reservedRange = reservedRange;
    if (reservedName.length > 0) msg.reservedName = reservedName;
    if (type.extensions && type.extensions.length > 0) {
      msg.extensionRange = type.extensions.map((r) => ({ start: r[0], end: r[1] + 1 }));
    }
    const options = descriptorOptions(type.options as Obj | undefined, descriptorTypes.MessageOptions);
    if (options) msg.options = options;
    return msg;
  }

  private fieldDescriptor(
    f: protobuf.Field,
    parent: protobuf.Type,
    oneofs: protobuf.OneOf[],
    nestedType: Obj[],
    src: SourceFile,
  ): Obj {
    const opts = f.options as Obj | undefined;
    const out: Obj = {
      name: f.name,
      number: f.id,
      label: f.repeated || f.map ? 'LABEL_REPEATED' : f.required && src.syntax === 'proto2' ? 'LABEL_REQUIRED' : 'LABEL_OPTIONAL',
      jsonName: typeof opts?.json_name === 'string' ? opts.json_name : jsonName(f.name),
    };
    f.resolve();
    if (f instanceof protobuf.MapField) {
      // map<K, V> is sugar for a repeated nested `XxxEntry { K key = 1; V value = 2; }`.
      const entryName = mapEntryName(f.name);
      const entryFqn = `${fqn(parent)}.${entryName}`;
      this.index(entryFqn, src.name);
      this.messages.add(entryFqn);
      const key: Obj = { name: 'key', number: 1, label: 'LABEL_OPTIONAL', jsonName: 'key', type: SCALAR_TYPES[f.keyType] };
      const value: Obj = { name: 'value', number: 2, label: 'LABEL_OPTIONAL', jsonName: 'value' };
      this.setType(value, f.type, f.resolvedType, src.name);
      nestedType.push({ name: entryName, field: [key, value], options: { mapEntry: true } });
      out.type = 'TYPE_MESSAGE';
      out.typeName = `.${entryFqn}`;
    } else {
      this.setType(out, f.type, f.resolvedType, src.name);
    }
    if (f.partOf) {
      out.oneofIndex = oneofs.indexOf(f.partOf);
      if (opts?.proto3_optional === true) out.proto3Optional = true;
    }
    if (opts && opts.default !== undefined && src.syntax === 'proto2') out.defaultValue = String(opts.default);
    const options = descriptorOptions(opts, descriptorTypes.FieldOptions);
    if (options) out.options = options;
    return out;
  }

  private setType(out: Obj, typeName: string, resolved: protobuf.Type | protobuf.Enum | null, file: string): void {
    const scalar = SCALAR_TYPES[typeName];
    if (scalar !== undefined && !resolved) {
      out.type = scalar;
    } else if (resolved instanceof protobuf.Type) {
      out.type = 'TYPE_MESSAGE';
      out.typeName = resolved.fullName; // fully qualified, with leading dot
    } else if (resolved instanceof protobuf.Enum) {
      out.type = 'TYPE_ENUM';
      out.typeName = resolved.fullName;
    } else {
      throw new Error(`reflection: ${file}: unresolved type ${typeName}`);
    }
  }

  private enumDescriptor(e: protobuf.Enum, scope: string, file: string): Obj {
    this.index(fqn(e), file);
    const value = Object.entries(e.values).map(([name, number]) => {
      // Enum values are siblings of their enum in the symbol namespace.
      this.index(scope ? `${scope}.${name}` : name, file);
      const v: Obj = { name, number };
      const vopts = descriptorOptions(e.valuesOptions?.[name] as Obj | undefined, descriptorTypes.EnumValueOptions);
      if (vopts) v.options = vopts;
      return v;
    });
    const out: Obj = { name: e.name, value };
    const reservedRange: Obj[] = [];
    const reservedName: string[] = [];
    for (const r of e.reserved ?? []) {
      // Enum reserved ranges are end-inclusive in descriptors too.
      if (typeof r === 'string') reservedName.push(r);
      else reservedRange.push({ start: r[0], end: r[1] });
    }
    if (reservedRange.length > 0) out.reservedRange = reservedRange;
    if (reservedName.length > 0) out.reservedName = reservedName;
    const options = descriptorOptions(e.options as Obj | undefined, descriptorTypes.EnumOptions);
    if (options) out.options = options;
    return out;
  }

  private serviceDescriptor(s: protobuf.Service, file: string): Obj {
    const name = fqn(s);
    this.index(name, file);
    this.serviceNames.push(name);
    const method = s.methodsArray.map((m) => {
      m.resolve();
      this.index(`${name}.${m.name}`, file);
      if (!m.resolvedRequestType || !m.resolvedResponseType) {
        throw new Error(`reflection: ${file}: unresolved types in ${name}.${m.name}`);
      }
      const out: Obj = {
        name: m.name,
        inputType: m.resolvedRequestType.fullName,
        outputType: m.resolvedResponseType.fullName,
      };
      if (m.requestStream) out.clientStreaming = true;
      if (m.responseStream) out.serverStreaming = true;
      const options = descriptorOptions(m.options as Obj | undefined, descriptorTypes.MethodOptions);
      if (options) out.options = options;
      return out;
    });
    const out: Obj = { name: s.name, method };
    const options = descriptorOptions(s.options as Obj | undefined, descriptorTypes.ServiceOptions);
    if (options) out.options = options;
    return out;
  }
}

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
