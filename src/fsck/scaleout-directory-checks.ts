// Directories of a scale-out store, read in keyset pages: each row sound,
// its children present with a matching size, its files' blobs indexed.
import { b3Hex } from '../castore/digest.js';
import { type Directory } from '../castore/messages.js';
import { showName } from '../castore/directory.js';
import { examineDirectory, sizesOf, type ChildState } from './examine.js';
import { ScaleoutCheckState, SIZE_CACHE_ENTRIES, LOOKUP_BATCH, chunks } from './scaleout-check-state.js';
import type { ObjectChecks } from './scaleout-object-checks.js';
import { digestArrayLookup } from '../scaleout/pg-digests.js';

/** Directory rows of the digests in $1 (bytea[]). */
export const DIRECTORY_ROWS_SQL = `SELECT k.d AS digest, t.data FROM ${digestArrayLookup(1, 'directories', 't', 't.data')}`;

export class ScaleoutDirectoryChecks {
  constructor(
    private readonly s: ScaleoutCheckState,
    private readonly objs: ObjectChecks,
  ) {}

  remember(hex: string, state: ChildState): ChildState {
    if (this.s.childCache.size >= SIZE_CACHE_ENTRIES) this.s.childCache.delete(this.s.childCache.keys().next().value!);
    this.s.childCache.set(hex, state);
    return state;
  }

  /** Directory rows by hex digest (absent: missing). */
  async directoryRows(hexes: Iterable<string>): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const batch of chunks([...new Set(hexes)], LOOKUP_BATCH)) {
      const rows = await this.s.q<{ digest: Buffer; data: Buffer }>(DIRECTORY_ROWS_SQL, [batch.map((h) => Buffer.from(h, 'hex'))]);
      for (const r of rows) out.set(r.digest.toString('hex'), r.data);
    }
    return out;
  }

  /** The child states of these directories, from the cache or one query per batch. */
  async childStates(hexes: Iterable<string>): Promise<Map<string, ChildState>> {
    const out = new Map<string, ChildState>();
    const todo: string[] = [];
    for (const h of hexes) {
      const known = this.s.childCache.get(h);
      if (known) out.set(h, known);
      else todo.push(h);
    }
    if (todo.length === 0) return out;
    const rows = await this.directoryRows(todo);
    for (const h of todo) {
      const data = rows.get(h);
      let state: ChildState;
      if (!data) state = 'missing';
      else {
        const d = examineDirectory(h, data, 'key');
        state = d.problem || !d.dir ? 'corrupt' : sizesOf(d.dir);
      }
      out.set(h, this.remember(h, state));
    }
    return out;
  }

  /** Keyset pages of (digest, data) rows; the next page is fetched while the caller checks this one. */
  async *rowPages(table: 'directories' | 'pathinfos'): AsyncGenerator<{ digest: Buffer; data: Buffer }[]> {
    type Row = { digest: Buffer; data: Buffer };
    const fetch = (after: Buffer): Promise<Row[]> =>
      this.s.q<Row>(`SELECT digest, data FROM ${table} WHERE digest > $1 ORDER BY digest LIMIT $2`, [after, this.s.pageRows]);
    let next: Promise<Row[]> | undefined = fetch(Buffer.alloc(0));
    try {
      while (next) {
        const page: Row[] = await next;
        next = page.length < this.s.pageRows ? undefined : fetch(page[page.length - 1].digest);
        yield page;
      }
    } finally {
      next?.catch(() => {});
    }
  }

  async checkDirectories(): Promise<void> {
    for await (const page of this.rowPages('directories')) await this.checkDirectoryPage(page);
  }

  async checkDirectoryPage(page: { digest: Buffer; data: Buffer }[]): Promise<void> {
    const sound: { hex: string; rel: string; dir: Directory }[] = [];
    for (const row of page) {
      const hex = row.digest.toString('hex');
      const rel = `directories/${hex}`;
      this.s.counts.directories++;
      const d = examineDirectory(hex, row.data, 'key');
      if (d.problem || !d.dir) {
        this.s.badDirs.set(hex, d.problem ?? 'unreadable');
        this.remember(hex, 'corrupt');
        this.s.report('error', 'directory', rel, d.problem ?? 'unreadable');
        continue;
      }
      this.remember(hex, sizesOf(d.dir));
      for (const c of d.dir.directories) await this.s.dirRefs.add(c.digest);
      for (const f of d.dir.files) await this.s.blobRefs.add(f.digest);
      sound.push({ hex, rel, dir: d.dir });
    }
    const [children, blobs] = await Promise.all([
      this.childStates(sound.flatMap((s) => s.dir.directories.map((c) => b3Hex(c.digest)))),
      this.objs.blobRows(sound.flatMap((s) => s.dir.files.map((f) => f.digest))),
    ]);
    for (const { hex, rel, dir } of sound) {
      const problems: string[] = [];
      for (const c of dir.directories) {
        const childHex = b3Hex(c.digest);
        const state = children.get(childHex)!;
        if (state === 'missing') {
          this.s.badDirs.set(childHex, 'missing');
          problems.push(`directory ${showName(c.name)} refers to ${childHex}, which is missing`);
        } else if (state !== 'corrupt' && !state.includes(c.size)) {
          problems.push(`directory ${showName(c.name)} says size ${c.size}, but ${childHex} has size ${state[0]} (or ${state[1]} by the older formula)`);
        }
        // A corrupt child is reported as itself.
      }
      for (const f of dir.files) {
        const p = await this.objs.blobProblem(f.digest, f.size, blobs);
        if (p) problems.push(`file ${showName(f.name)}: ${p}`);
      }
      if (problems.length > 0) {
        this.s.badDirs.set(hex, problems[0]);
        for (const p of problems) this.s.report('error', 'directory', rel, p);
      }
    }
  }
}
