import type { PathInfoService } from '../../store/pathinfo-service.js';
import type { PathInfo, CalculateNarResponse } from '../../store/messages.js';
import type { Node } from '../../castore/messages.js';
import { pathInfoServiceDef } from '../definitions.js';
import { acquireH2Connection, type H2Connection, type SharedH2Connection } from '../h2/connection.js';
import { unary, unaryOptional, serverStream } from '../h2/calls.js';
import { isKind } from '../../castore/errors.js';
import { validatePathInfo } from '../../store/validate-pathinfo.js';
import { encode as nix32 } from '../../nix/nixbase32.js';

// Over the lean HTTP/2 client (../h2), like blobs: a copy then loads no grpc-js at all.
export class GrpcPathInfoService implements PathInfoService {
  private readonly shared: SharedH2Connection;
  private readonly methods: ReturnType<typeof pathInfoMethods>;
  /** Whether the server wants named CalculateNAR roots (tvix before 2024-10-18). */
  private namedRoots = false;

  constructor(private readonly addr: string) {
    this.shared = acquireH2Connection(addr);
    this.methods = pathInfoMethods(this.shared.conn);
  }

  async get(storeDigest: Uint8Array): Promise<PathInfo | undefined> {
    await this.shared.ready;
    const info = await unaryOptional(this.shared.conn, this.methods.Get, { byOutputHash: storeDigest }, `PathInfo Get ${nix32(storeDigest)}`);
    if (info) validatePathInfo(info); // clients validate what they receive, as tvix's do
    return info;
  }

  async put(info: PathInfo, signal?: AbortSignal): Promise<PathInfo> {
    await this.shared.ready;
    return unary(this.shared.conn, this.methods.Put, info, 'PathInfo Put', signal);
  }

  async *list(): AsyncIterable<PathInfo> {
    await this.shared.ready;
    const stream = await serverStream(this.shared.conn, this.methods.List, {}, 'PathInfo List');
    if (stream) yield* stream;
  }

  /** Sends an anonymous root first (tvix HEAD); retries named for older servers. Aborting cancels the server's work. */
  async calculateNar(node: Node, signal?: AbortSignal): Promise<CalculateNarResponse> {
    await this.shared.ready;
    const call = (n: Node) => unary(this.shared.conn, this.methods.CalculateNAR, { node: n }, 'CalculateNAR', signal);
    if (this.namedRoots) return call(node);
    try {
      return await call({ ...node, name: new Uint8Array(0) });
    } catch (err) {
      if (!isKind(err, 'invalid') || !(err as Error).message.includes('invalid root node') || node.name.length === 0) throw err;
      this.namedRoots = true;
      return call(node);
    }
  }

  async stats() {
    // Loaded when asked: it goes through grpc-js.
    const { fetchStoreStats } = await import('../stats-client.js');
    const s = await fetchStoreStats(this.addr);
    return { count: s.pathInfos, narBytes: s.narBytes };
  }

  async close(): Promise<void> {
    this.shared.release();
  }
}

function pathInfoMethods(conn: H2Connection) {
  const def = pathInfoServiceDef();
  return { Get: conn.method(def.Get), Put: conn.method(def.Put), List: conn.method(def.List), CalculateNAR: conn.method(def.CalculateNAR) };
}
