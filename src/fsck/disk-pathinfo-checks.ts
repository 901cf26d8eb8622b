// PathInfo checks of an on-disk store: every PathInfo is sound, stored
// under its store path's digest, with its root's closure complete, and
// (with `nar`) renders to the NAR its narinfo records.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PathInfo } from '../store/messages.js';
import { examinePathInfo, narMismatch } from './examine.js';
import { message } from './report.js';
import { errno, type DiskCheckState } from './disk-state.js';
import type { BlobChecks } from './disk-blob-checks.js';
import type { DirectoryChecks } from './disk-directory-checks.js';

export class PathInfoChecks {
  constructor(
    private readonly s: DiskCheckState,
    private readonly blobs: BlobChecks,
    private readonly dirs: DirectoryChecks,
  ) {}

  async check(hex: string, rel: string): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.s.root, rel));
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      this.s.report('error', 'pathinfo', rel, `unreadable: ${message(err)}`);
      return;
    }
    this.s.counts.pathInfos++;
    const e = examinePathInfo(bytes);
    if ('problem' in e) {
      this.s.report('error', 'pathinfo', rel, e.problem);
      return;
    }
    const { info, path, key } = e;
    if (key !== hex) {
      this.s.report('error', 'pathinfo', rel, `holds the PathInfo of ${path}, which belongs under ${this.s.rel('pathinfo', key)}`);
      return;
    }
    const node = info.node!;
    let problem: string | undefined;
    if (node.type === 'file') {
      await this.s.blobRefs.add(node.digest);
      const p = await this.blobs.problem(node.digest, node.size);
      if (p) problem = `root file: ${p}`;
    } else if (node.type === 'directory') {
      await this.s.dirRefs.add(node.digest);
      problem = await this.dirs.closureProblem(node.digest, node.size);
    }
    if (problem) {
      this.s.report('error', 'pathinfo', rel, `${path}: ${problem}`);
      return;
    }
    if (this.s.opts.nar) await this.s.narLimit.run(() => this.checkNar(info, path, rel));
  }

  private async checkNar(info: PathInfo, path: string, rel: string): Promise<void> {
    const problem = await narMismatch(info, this.s.castore, path, this.s.counts);
    if (problem) this.s.report('error', 'pathinfo', rel, problem);
  }
}
