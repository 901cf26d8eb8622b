// `nix-castore import`: an existing binary cache into the store. Every
// narinfo (or the closures of some paths) is read, its NAR downloaded,
// decompressed, verified against NarHash/NarSize (and FileHash when given)
// and ingested; PathInfos are published in reference order. NARs are
// fetched in parallel; paths the store has already are skipped, so a run
// that was interrupted picks up where it stopped.
import type { Store } from '../store/store.js';
import { lookupStorePath } from '../store/nix-view.js';
import { sameBytes } from '../castore/digest.js';
import type { SizeFormula } from '../castore/directory.js';
import { parseNarInfo, type NarInfo } from '../nix/narinfo.js';
import { parseCompression } from '../nix/compression-names.js';
import { formatNix32 } from '../nix/hash.js';
import { absolute, hashPart, parseAbsolute, storePathsEqual, type StorePath } from '../nix/store-path.js';
import { Limiter } from '../util/limiter.js';
import type { CacheSource } from './cache-source.js';
import { receiveNar } from './receive-nar.js';
import { publish } from './publish.js';

export interface ImportOptions {
  /** NARs downloaded and ingested at once. */
  jobs?: number;
  formula?: SizeFormula;
  maxNarSize?: number;
  /** One line per event (stderr in the CLI). */
  progress?: (line: string) => void;
}

export interface ImportReport {
  /** Paths considered (the closure, or every narinfo). */
  total: number;
  imported: number;
  /** Already in the store. */
  present: number;
  failed: { path: string; error: string }[];
  /** Uncompressed NAR bytes of the imported paths. */
  narBytes: number;
  /** Bytes downloaded (the compressed files). */
  fileBytes: number;
  /** File-content bytes the store did not have before (what deduplication left). */
  storedBytes: number;
}

interface Entry {
  hash: string;
  ni: NarInfo;
  done?: Promise<void>;
}

const NARINFO_FETCHES = 16;

class Failure extends Error {}

export async function importCache(source: CacheSource, store: Store, roots: StorePath[] | undefined, opts: ImportOptions = {}): Promise<ImportReport> {
  const say = opts.progress ?? (() => {});
  const report: ImportReport = { total: 0, imported: 0, present: 0, failed: [], narBytes: 0, fileBytes: 0, storedBytes: 0 };
  const fail = (path: string, error: string) => {
    report.failed.push({ path, error });
    say(`failed: ${path}: ${error}`);
  };

  const entries = await readNarInfos(source, store, roots, fail, say);
  report.total = entries.size + report.failed.length;
  const ingests = new Limiter(opts.jobs ?? 4);
  let finished = 0;

  dropCycles(entries, fail);
  const run = (e: Entry): Promise<void> => {
    if (e.done) return e.done;
    e.done = (async () => {
      const path = absolute(e.ni.storePath);
      if (await present(store, e.ni)) {
        report.present++;
        return;
      }
      const received = ingests.run(() => fetchAndIngest(source, store, e.ni, opts));
      received.catch(() => {}); // awaited below
      // References first: a PathInfo is published only after theirs.
      for (const r of e.ni.references) {
        if (storePathsEqual(r, e.ni.storePath)) continue;
        const dep = entries.get(hashPart(r));
        if (dep) {
          await run(dep).catch(() => {
            throw new Failure(`its reference ${absolute(r)} was not imported`);
          });
        } else if (!(await lookupStorePath(store.pathInfos, r))) {
          throw new Failure(`its reference ${absolute(r)} is neither in the cache nor in the store`);
        }
      }
      const nar = await received;
      await publish(store, e.ni, nar);
      report.imported++;
      report.narBytes += nar.narSize;
      report.fileBytes += nar.fileSize;
      report.storedBytes += nar.storedBytes;
      say(`[${++finished}/${entries.size}] ${path}: ${mib(nar.narSize)} NAR, ${mib(nar.storedBytes)} new`);
    })();
    e.done.catch((err: Error) => fail(absolute(e.ni.storePath), err.message));
    return e.done;
  };
  await Promise.allSettled([...entries.values()].map((e) => run(e)));
  return report;
}

async function present(store: Store, ni: NarInfo): Promise<boolean> {
  const info = await lookupStorePath(store.pathInfos, ni.storePath);
  if (!info) return false;
  const stored = info.narinfo?.narSha256;
  if (stored && sameBytes(stored, ni.narHash)) return true;
  throw new Failure(`already in the store with another NAR hash (${stored ? formatNix32(stored) : 'none'}); not replaced`);
}

async function fetchAndIngest(source: CacheSource, store: Store, ni: NarInfo, opts: ImportOptions) {
  const compression = parseCompression(ni.compression);
  if (!compression) throw new Failure(`Compression: ${ni.compression} is not supported (xz, zstd, bzip2, none are)`);
  const nar = await receiveNar(await source.nar(ni.url), compression, store, { formula: opts.formula, maxNarSize: opts.maxNarSize });
  if (ni.fileHash && !sameBytes(ni.fileHash, nar.fileSha256)) {
    throw new Failure(`${ni.url} hashes to ${formatNix32(nar.fileSha256)}, its narinfo says FileHash ${formatNix32(ni.fileHash)}`);
  }
  if (ni.fileSize !== undefined && ni.fileSize !== nar.fileSize) {
    throw new Failure(`${ni.url} is ${nar.fileSize} bytes, its narinfo says FileSize ${ni.fileSize}`);
  }
  return nar;
}

/** The narinfos to import: every one the source lists, or the closures of `roots`. */
async function readNarInfos(
  source: CacheSource,
  store: Store,
  roots: StorePath[] | undefined,
  fail: (path: string, error: string) => void,
  say: (line: string) => void,
): Promise<Map<string, Entry>> {
  const entries = new Map<string, Entry>();
  const seen = new Set<string>();
  const fetches = new Limiter(NARINFO_FETCHES);
  const pending: Promise<void>[] = [];

  const visit = (hash: string, path: string | undefined, follow: boolean, required: boolean) => {
    if (seen.has(hash)) return;
    seen.add(hash);
    pending.push(
      fetches.run(async () => {
        let text: string | undefined;
        try {
          text = await source.narInfo(hash);
        } catch (err) {
          return fail(path ?? hash, (err as Error).message);
        }
        if (text === undefined) {
          // A reference the store already has need not be in the cache.
          if (required || !path || !(await storeHas(store, path))) fail(path ?? hash, `no ${hash}.narinfo in ${source.where}`);
          return;
        }
        let ni: NarInfo;
        try {
          ni = parseNarInfo(text);
          if (hashPart(ni.storePath) !== hash) throw new Error(`it is the narinfo of ${absolute(ni.storePath)}`);
        } catch (err) {
          return fail(path ?? hash, `${hash}.narinfo: ${(err as Error).message}`);
        }
        entries.set(hash, { hash, ni });
        if (entries.size % 1000 === 0) say(`read ${entries.size} narinfos…`);
        if (follow) for (const r of ni.references) visit(hashPart(r), absolute(r), true, false);
      }),
    );
  };

  if (roots) {
    for (const r of roots) visit(hashPart(r), absolute(r), true, true);
  } else {
    if (!source.list) throw new Failure(`${source.where} cannot be listed: name the store paths to import (their closures are imported)`);
    for await (const h of source.list()) visit(h, undefined, false, true);
  }
  while (pending.length > 0) await pending.shift();
  return entries;
}

/**
 * Nix paths never refer to each other in a loop (a path may refer to
 * itself); a cache that says otherwise would leave them waiting for each
 * other forever: those are dropped as failed.
 */
function dropCycles(entries: Map<string, Entry>, fail: (path: string, error: string) => void): void {
  const state = new Map<string, 'open' | 'done'>();
  const cyclic = new Set<string>();
  for (const start of entries.keys()) {
    if (state.has(start)) continue;
    const stack: { hash: string; refs: string[] }[] = [];
    const push = (h: string) => {
      state.set(h, 'open');
      const e = entries.get(h)!;
      stack.push({ hash: h, refs: e.ni.references.map(hashPart).filter((r) => r !== h && entries.has(r)) });
    };
    push(start);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const next = top.refs.pop();
      if (next === undefined) {
        state.set(top.hash, 'done');
        stack.pop();
      } else if (state.get(next) === 'open') {
        for (const f of stack.slice(stack.findIndex((x) => x.hash === next))) cyclic.add(f.hash);
      } else if (!state.has(next)) {
        push(next);
      }
    }
  }
  for (const h of cyclic) {
    fail(absolute(entries.get(h)!.ni.storePath), 'it is part of a reference cycle, which Nix paths cannot have');
    entries.delete(h);
  }
}

async function storeHas(store: Store, path: string): Promise<boolean> {
  return (await lookupStorePath(store.pathInfos, parseAbsolute(path))) !== undefined;
}

function mib(n: number): string {
  return n < 2 ** 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

export { Failure as ImportError };
