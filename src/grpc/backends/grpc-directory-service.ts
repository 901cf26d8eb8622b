import type { DirectoryService, DirectoryPutter } from '../../castore/directory-service.js';
import type { Directory } from '../../castore/messages.js';
import { directoryServiceDef } from '../definitions.js';
import { acquireH2Connection, type H2Connection, type SharedH2Connection } from '../h2/connection.js';
import { serverStream, clientStream } from '../h2/calls.js';
import { b3Hex, b3String } from '../../castore/digest.js';
import { directoryDigest, validateDirectory } from '../../castore/directory.js';
import { CastoreError } from '../../castore/errors.js';

// Over the lean HTTP/2 client (../h2), like blobs: a copy then loads no grpc-js at all.
export class GrpcDirectoryService implements DirectoryService {
  private readonly shared: SharedH2Connection;
  private readonly methods: ReturnType<typeof directoryMethods>;

  constructor(private readonly addr: string) {
    this.shared = acquireH2Connection(addr);
    this.methods = directoryMethods(this.shared.conn);
  }

  async get(digest: Uint8Array): Promise<Directory | undefined> {
    await this.shared.ready;
    const what = `directory Get ${b3String(digest)}`;
    const stream = await serverStream(this.shared.conn, this.methods.Get, { digest, recursive: false }, what);
    if (!stream) return undefined;
    let result: Directory | undefined;
    for await (const d of stream) {
      if (result) throw new CastoreError('internal', `${what}: server sent more than one directory`);
      result = d;
    }
    if (result) {
      checkValid(result, what);
      if (b3Hex(directoryDigest(result)) !== b3Hex(digest)) {
        throw new CastoreError('internal', `${what}: server sent a directory with a different digest`);
      }
    }
    return result;
  }

  /** Checks the server's stream like tvix HEAD clients do: each directory expected, each once. */
  async *getRecursive(root: Uint8Array): AsyncIterable<Directory> {
    await this.shared.ready;
    const what = `recursive directory Get ${b3String(root)}`;
    const stream = await serverStream(this.shared.conn, this.methods.Get, { digest: root, recursive: true }, what);
    if (!stream) return;
    const expected = new Set<string>([b3Hex(root)]);
    const received = new Set<string>();
    for await (const d of stream) {
      const digest = directoryDigest(d);
      const key = b3Hex(digest);
      if (!expected.has(key) || received.has(key)) {
        throw new CastoreError('internal', `${what}: unexpected directory ${b3String(digest)}`);
      }
      checkValid(d, what);
      received.add(key);
      for (const c of d.directories) expected.add(b3Hex(c.digest));
      yield d;
    }
    if (received.size > 0 && received.size !== expected.size) {
      throw new CastoreError('internal', `${what}: stream ended before all directories arrived`);
    }
  }

  putter(): DirectoryPutter {
    const call = clientStream(this.shared.conn, this.methods.Put, 'directory Put');
    return {
      put: (dir) => call.write(dir),
      close: async () => Buffer.from((await call.finish()).rootDigest),
      abort: async () => call.cancel(),
    };
  }

  async stats() {
    // Loaded when asked: it goes through grpc-js.
    const { fetchStoreStats } = await import('../stats-client.js');
    const s = await fetchStoreStats(this.addr);
    return { count: s.directories, bytes: s.directoryBytes };
  }

  async close(): Promise<void> {
    this.shared.release();
  }
}

function checkValid(d: Directory, what: string): void {
  try {
    validateDirectory(d);
  } catch (err) {
    throw new CastoreError('internal', `${what}: server sent an invalid directory: ${(err as Error).message}`);
  }
}

function directoryMethods(conn: H2Connection) {
  const def = directoryServiceDef();
  return { Get: conn.method(def.Get), Put: conn.method(def.Put) };
}
