// The three write RPCs (and the matching reads) as plain gRPC calls with
// chosen metadata, answering the status instead of throwing: for the
// read-only and auth tests.
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { blobServiceDef, directoryServiceDef, pathInfoServiceDef, type ProtoPackage } from '../../src/grpc/definitions.js';
import type { Directory } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import { blake3 } from '../../src/castore/digest.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { calculateNar, type Castore } from '../../src/store/render-nar.js';

export interface Answer<T> {
  code: status;
  /** The status name, for assertions that print well. */
  name: string;
  details: string;
  res?: T;
}

const answer = <T>(err: grpc.ServiceError | null, res?: T): Answer<T> =>
  err ? { code: err.code, name: status[err.code], details: err.details, res } : { code: status.OK, name: 'OK', details: '', res };

/** Metadata with `authorization: <value>`, or none. */
export function auth(value?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (value !== undefined) md.set('authorization', value);
  return md;
}

export class Writer {
  readonly client: grpc.Client;
  constructor(socket: string) {
    this.client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  }
  close(): void {
    this.client.close();
  }

  private stream<Req, Res>(m: grpc.MethodDefinition<Req, Res>, msgs: Req[], md: grpc.Metadata): Promise<Answer<Res>> {
    return new Promise((resolve) => {
      const call = this.client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md, (err, res) => resolve(answer(err, res)));
      call.on('error', () => {});
      for (const msg of msgs) call.write(msg);
      call.end();
    });
  }

  private unary<Req, Res>(m: grpc.MethodDefinition<Req, Res>, req: Req, md: grpc.Metadata): Promise<Answer<Res>> {
    return new Promise((resolve) => this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, md, (err, res) => resolve(answer(err, res))));
  }

  putBlob(data: Buffer, md = auth(), pkg: ProtoPackage = 'tvix') {
    return this.stream(blobServiceDef(pkg).Put, [{ data }], md);
  }
  putDirectories(dirs: Directory[], md = auth(), pkg: ProtoPackage = 'tvix') {
    return this.stream(directoryServiceDef(pkg).Put, dirs, md);
  }
  putPathInfo(info: PathInfo, md = auth(), pkg: ProtoPackage = 'tvix') {
    return this.unary(pathInfoServiceDef(pkg).Put, info, md);
  }

  statBlob(digest: Uint8Array) {
    return this.unary(blobServiceDef().Stat, { digest, sendChunks: false, sendBao: false }, auth());
  }
  getDirectory(digest: Uint8Array): Promise<Answer<Directory[]>> {
    return new Promise((resolve) => {
      const m = directoryServiceDef().Get;
      const out: Directory[] = [];
      const call = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, { digest, recursive: false });
      call.on('data', (d: Directory) => out.push(d));
      call.on('error', (err: grpc.ServiceError) => resolve(answer(err, out)));
      call.on('end', () => resolve(answer(null, out)));
    });
  }
  getPathInfo(storeDigest: Uint8Array) {
    return this.unary(pathInfoServiceDef().Get, { byOutputHash: storeDigest }, auth());
  }
}

/** A valid PathInfo whose root is a symlink (so it needs no content in the store). */
export function symlinkPathInfo(label: string): { info: PathInfo; storeDigest: Buffer } {
  const storeDigest = Buffer.from(blake3(Buffer.from(label)).subarray(0, 20));
  const info: PathInfo = {
    node: { type: 'symlink', name: Buffer.from(`${nix32(storeDigest)}-${label}`), target: Buffer.from('/nix/store/elsewhere') },
    references: [],
    narinfo: { narSize: 120, narSha256: Buffer.alloc(32, 7), signatures: [], referenceNames: [] },
  };
  return { info, storeDigest };
}

/** One blob Put in 1 MiB messages (a gRPC message is at most 4 MiB); its status name. */
export function putLargeBlob(socket: string, data: Buffer): Promise<string> {
  const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  const m = blobServiceDef().Put;
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), (err) => {
      client.close();
      resolve(err ? status[err.code] : 'OK');
    });
    call.on('error', () => {});
    for (let off = 0; off < data.length; off += 1 << 20) call.write({ data: data.subarray(off, off + (1 << 20)) });
    call.end();
  });
}

/**
 * Stores `data` as a store path whose root is one file, through the daemon
 * at `socket`; answers its NAR's URL path on the binary cache (`/nar/….nar`).
 */
export async function storeSingleFilePath(socket: string, label: string, data: Buffer): Promise<string> {
  const put = await putLargeBlob(socket, data);
  if (put !== 'OK') throw new Error(`blob Put: ${put}`);
  const storeDigest = Buffer.from(blake3(Buffer.from(label)).subarray(0, 20));
  const node = { type: 'file' as const, name: Buffer.from(`${nix32(storeDigest)}-${label}`), digest: blake3(data), size: data.length, executable: false };
  const castore = { blobs: { read: async () => (async function* () { yield data; })() } } as unknown as Castore;
  const nar = await calculateNar(node, castore);
  const info: PathInfo = { node, references: [], narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] } };
  const w = new Writer(socket);
  try {
    const a = await w.putPathInfo(info);
    if (a.code !== status.OK) throw new Error(`PathInfo Put: ${a.name} ${a.details}`);
  } finally {
    w.close();
  }
  return `/nar/${nix32(storeDigest)}-${nix32(nar.narSha256)}.nar`;
}
