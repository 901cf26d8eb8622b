// Descriptor pool: .proto sources -> one encoded FileDescriptorProto per
// file, named by its import path, with its real imports as dependencies.
import protobuf from 'protobufjs';
import descriptorTypes from 'protobufjs/ext/descriptor/index.js';
import { PARSE_OPTIONS, SCALAR_TYPES, type SourceFile, jsonName, mapEntryName, descriptorOptions, fileSyntax, fqn, type Obj } from './descriptor-parts.js';

export class DescriptorPool {
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
