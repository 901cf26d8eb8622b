// Pieces of FileDescriptorProto building: scalar type names, JSON and
// map-entry names, options filtering, syntax detection.
import protobuf from 'protobufjs';

export type Obj = Record<string, unknown>;

// ---------------------------------------------------------------------------
// Descriptor pool: .proto sources -> one encoded FileDescriptorProto per file.

export const PARSE_OPTIONS: protobuf.IParseOptions = { keepCase: true };

export const SCALAR_TYPES: Record<string, string> = {
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

export interface SourceFile {
  name: string;
  pkg: string;
  dependency: string[];
  weakDependency: number[];
  syntax: 'proto2' | 'proto3';
  options: Obj | undefined;
}

/** `foo_bar` -> `fooBar`, as protoc computes `json_name`. */
export function jsonName(name: string): string {
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
export function mapEntryName(fieldName: string): string {
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
export function descriptorOptions(options: Obj | undefined, optionsType: protobuf.Type, extra?: Obj): Obj | undefined {
  const out: Obj = { ...extra };
  for (const [key, value] of Object.entries(options ?? {})) {
    if (key.startsWith('(') || NON_DESCRIPTOR_OPTIONS.has(key)) continue;
    const camel = snakeToCamel(key);
    if (optionsType.fields[camel] !== undefined) out[camel] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Skips leading whitespace and comments, then reads the `syntax`/`edition` statement. */
export function fileSyntax(source: string, name: string): 'proto2' | 'proto3' {
  const head = source.replace(/^(?:\s+|\/\/[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/, '');
  const m = /^(syntax|edition)\s*=\s*(["'])([^"']*)\2/.exec(head);
  if (!m) return 'proto2';
  if (m[1] === 'syntax' && (m[3] === 'proto2' || m[3] === 'proto3')) return m[3];
  throw new Error(`reflection: ${name}: unsupported ${m[1]} "${m[3]}" (only proto2 and proto3 are supported)`);
}

export function fqn(obj: protobuf.ReflectionObject): string {
  return obj.fullName.replace(/^\./, '');
}
