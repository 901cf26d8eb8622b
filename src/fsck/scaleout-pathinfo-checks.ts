// PathInfos of a scale-out store: each row sound, under its store path's
// digest, its closure complete and (with `nar`) its NAR as recorded.
import { readCompressedWhole } from '../scaleout/compressed-reads.js';
import { b3Hex } from '../castore/digest.js';
import { readDirectory, type Directory } from '../castore/messages.js';
import { storageError, CastoreError } from '../castore/errors.js';
import type { BlobService } from '../castore/blob-service.js';
import type { DirectoryService } from '../castore/directory-service.js';
import { walkClosure } from '../castore/traverse.js';
import type { Castore } from '../store/render-nar.js';
import type { PathInfo } from '../store/messages.js';
import { closureProblem, examineDirectory, examinePathInfo, narMismatch, type ChildState } from './examine.js';
import { ScaleoutCheckState, chunks } from './scaleout-check-state.js';
import type { ScaleoutDirectoryChecks } from './scaleout-directory-checks.js';
import type { ObjectChecks } from './scaleout-object-checks.js';

export class ScaleoutPathInfoChecks {
  constructor(
    private readonly s: ScaleoutCheckState,
    private readonly dirs: ScaleoutDirectoryChecks,
    private readonly objs: ObjectChecks,
  ) {}

  async checkPathInfos(): Promise<void> {
    for await (const page of this.dirs.rowPages('pathinfos')) await this.checkPathInfoPage(page);
  }

  async checkPathInfoPage(page: { digest: Buffer; data: Buffer }[]): Promise<void> {
    const sound: { rel: string; info: PathInfo; path: string }[] = [];
    for (const row of page) {
      const hex = row.digest.toString('hex');
      const rel = `pathinfos/${hex}`;
      this.s.counts.pathInfos++;
      const e = examinePathInfo(row.data);
      if ('problem' in e) {
        this.s.report('error', 'pathinfo', rel, e.problem);
        continue;
      }
      if (e.key !== hex) {
        this.s.report('error', 'pathinfo', rel, `holds the PathInfo of ${e.path}, which belongs under pathinfos/${e.key}`);
        continue;
      }
      const node = e.info.node!;
      if (node.type === 'file') await this.s.blobRefs.add(node.digest);
      else if (node.type === 'directory') await this.s.dirRefs.add(node.digest);
      sound.push({ rel, info: e.info, path: e.path });
    }
    const roots = sound.map((s) => s.info.node!);
    const [blobs, states] = await Promise.all([
      this.objs.blobRows(roots.flatMap((n) => (n.type === 'file' ? [n.digest] : []))),
      this.dirs.childStates(roots.flatMap((n) => (n.type === 'directory' ? [b3Hex(n.digest)] : []))),
    ]);
    const narChecks: Promise<void>[] = [];
    for (const { rel, info, path } of sound) {
      const node = info.node!;
      let problem: string | undefined;
      if (node.type === 'file') {
        const p = await this.objs.blobProblem(node.digest, node.size, blobs);
        if (p) problem = `root file: ${p}`;
      } else if (node.type === 'directory') {
        problem = await this.closureProblem(node.digest, node.size, states.get(b3Hex(node.digest))!);
      }
      if (problem) {
        this.s.report('error', 'pathinfo', rel, `${path}: ${problem}`);
        continue;
      }
      if (this.s.opts.nar) narChecks.push(this.s.narLimit.run(() => this.checkNar(info, path, rel)));
    }
    await Promise.all(narChecks);
  }

  /** Why the directory closure under a root is not complete and sound, if it is not. */
  async closureProblem(digest: Uint8Array, size: number, state: ChildState): Promise<string | undefined> {
    return closureProblem(digest, size, state, this.s.badDirs, async (hexes) => {
      const rows = await this.dirs.directoryRows(hexes);
      return new Map(hexes.map((hex) => {
        const data = rows.get(hex);
        return [hex, data ? examineDirectory(hex, data, 'key') : undefined];
      }));
    });
  }

  /** Read-only services over the same S3 client and database, for rendering NARs. */
  castore(): Castore {
    const loadDir = async (digest: Uint8Array): Promise<Directory | undefined> => {
      const rows = await this.s.q<{ data: Buffer }>('SELECT data FROM directories WHERE digest = $1', [Buffer.from(digest)]);
      return rows.length ? readDirectory(rows[0].data) : undefined;
    };
    const readOnly = (): never => {
      throw new CastoreError('read-only', 'fsck only reads');
    };
    const blobs: BlobService = {
      stat: async (digest) => ((await this.objs.blobRows([digest])).size ? { chunks: [] } : undefined),
      read: async (digest) => {
        const row = (await this.objs.blobRows([digest])).get(b3Hex(digest));
        if (!row) return undefined;
        if (row.length === 0) return (async function* () {})();
        if (row.codec) return readCompressedWhole(this.s.s3, digest, row); // decompressed and checked
        const body = await this.s.s3.range(row.object, row.offset, row.length);
        return (async function* () {
          let got = 0;
          for await (const chunk of body) {
            got += chunk.length;
            yield chunk;
          }
          if (got !== row.length) throw storageError(`blob ${b3Hex(digest)}: S3 returned ${got} of ${row.length} bytes from ${row.object}`);
        })();
      },
      put: readOnly,
      close: async () => {},
    };
    const directories: DirectoryService = {
      get: loadDir,
      getRecursive: (root) => walkClosure(root, loadDir),
      putter: readOnly,
      close: async () => {},
    };
    return { blobs, directories };
  }

  narCastore: Castore | undefined;

  async checkNar(info: PathInfo, path: string, rel: string): Promise<void> {
    const problem = await narMismatch(info, (this.narCastore ??= this.castore()), path, this.s.counts);
    if (problem) this.s.report('error', 'pathinfo', rel, problem);
  }
}
