/**
 * Closure metadata in one normalised, validated form (closure.md §1, §4),
 * whatever it was read from: structured-attrs `.attrs.json`, the legacy
 * exportReferencesGraph text file, or `nix path-info --json`.
 *
 * The second half of this file holds the zod field schemas and error
 * formatting shared by the JSON readers.
 */
import { z } from 'zod';
import { parseContentAddress, parseNarHash } from '../nix/hash.js';
import { parseSignature } from '../nix/signature.js';
import { absolute, basename, parseAbsolute, sortStorePaths } from '../nix/store-path.js';
import type { StorePath } from '../nix/store-path.js';

export interface ClosureEntry {
  path: StorePath;
  /** 32 raw bytes; undefined for the legacy format (unknown). */
  narHash?: Uint8Array;
  /** Undefined for the legacy format. */
  narSize?: number;
  /** Sorted in nixbase32 order (compareStorePaths), deduplicated, may include the path itself. */
  references: StorePath[];
  /** The .drv path as given (its name includes ".drv"). */
  deriver?: StorePath;
  /** NARInfo.CA enum form (CaHash in src/nix/hash.ts), parsed from the text form. */
  ca?: { type: number; digest: Uint8Array };
  signatures: { name: string; data: Uint8Array }[];
}

export interface Closure {
  entries: ClosureEntry[];
  /** Where the entries came from, e.g. a file name or 'nix path-info'. */
  source: string;
}

/** Any problem with closure metadata; the message says what to fix. */
export class ClosureError extends Error {
  override name = 'ClosureError';
}

/** How an entry is called in messages, e.g. `closure[3]`, `[3]`, `line 7: entry 2`. */
export type EntryLabel = (index: number) => string;

/** `<source>: <label> (<path>)` */
function where(c: Closure, label: EntryLabel, i: number): string {
  return `${c.source}: ${label(i)} (${absolute(c.entries[i].path)})`;
}

/**
 * checkClosed with entries called `label(i)` in messages (the parsers pass
 * the names the user sees in the input, e.g. `closure[3]`).
 */
export function checkClosedLabelled(c: Closure, label: EntryLabel): void {
  const index = new Map<string, number>();
  c.entries.forEach((e, i) => {
    const key = basename(e.path);
    const first = index.get(key);
    if (first !== undefined) {
      throw new ClosureError(
        `${where(c, label, i)}: duplicate entry: the same store path as ${label(first)}; each path may appear only once`,
      );
    }
    index.set(key, i);
  });
  const missing: { entry: number; ref: StorePath }[] = [];
  c.entries.forEach((e, i) => {
    for (const r of e.references) if (!index.has(basename(r))) missing.push({ entry: i, ref: r });
  });
  if (missing.length > 0) {
    const [m] = missing;
    const more = missing.length > 1 ? ` (${missing.length - 1} more missing reference(s) in other entries or further on)` : '';
    throw new ClosureError(
      `${where(c, label, m.entry)}: references: ${absolute(m.ref)} is not in the closure ` +
        `(every reference needs an entry of its own; was the closure exported completely?)${more}`,
    );
  }
}

/** Checks: no duplicate paths; every reference is in the set; (nothing else). */
export function checkClosed(c: Closure): void {
  checkClosedLabelled(c, (i) => `entry ${i}`);
}

/** Binary min-heap of entry indices (ties in input order). */
class IndexHeap {
  private readonly a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.a;
    const top = a[0];
    const last = a.pop() as number;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r] < a[l] ? r : l;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/**
 * Entries ordered so every entry comes after all its references
 * (self-references ignored); ties in input order. References to paths that
 * are not entries are ignored (so a filtered closure can be ordered too);
 * duplicate paths and reference cycles are ClosureErrors.
 */
export function topoOrder(c: Closure): ClosureEntry[] {
  const n = c.entries.length;
  const index = new Map<string, number>();
  c.entries.forEach((e, i) => {
    const key = basename(e.path);
    const first = index.get(key);
    if (first !== undefined) {
      throw new ClosureError(`${c.source}: entries ${first} and ${i} are both ${absolute(e.path)}; each path may appear only once`);
    }
    index.set(key, i);
  });
  const pending = new Array<number>(n).fill(0);
  const deps: number[][] = [];
  const dependents: number[][] = Array.from({ length: n }, () => []);
  c.entries.forEach((e, i) => {
    const ds = new Set<number>();
    for (const r of e.references) {
      const j = index.get(basename(r));
      if (j !== undefined && j !== i) ds.add(j);
    }
    deps.push([...ds]);
    pending[i] = ds.size;
    for (const j of ds) dependents[j].push(i);
  });
  const ready = new IndexHeap();
  for (let i = 0; i < n; i++) if (pending[i] === 0) ready.push(i);
  const out: ClosureEntry[] = [];
  while (ready.size > 0) {
    const i = ready.pop();
    out.push(c.entries[i]);
    for (const d of dependents[i]) if (--pending[d] === 0) ready.push(d);
  }
  if (out.length < n) {
    // Every entry left over waits for another left-over entry: walk until one repeats.
    let i = pending.findIndex((p) => p > 0);
    const seen = new Map<number, number>();
    const walk: number[] = [];
    while (!seen.has(i)) {
      seen.set(i, walk.length);
      walk.push(i);
      i = deps[i].find((j) => pending[j] > 0) as number;
    }
    const cycle = [...walk.slice(seen.get(i)), i].map((j) => absolute(c.entries[j].path));
    throw new ClosureError(
      `${c.source}: the references form a cycle, so there is no dependency order: ${cycle.join(' -> ')}`,
    );
  }
  return out;
}

// ---------------------------------------------------------------------------
// Shared by the JSON readers: JSON parsing, zod field schemas, messages.

/** JSON.parse, turning a syntax error into a ClosureError naming the file. */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ClosureError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

function quote(s: string, max = 120): string {
  return JSON.stringify(s.length > max ? s.slice(0, max) + '…' : s);
}

/** Short description of a JSON value for "got …" in messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return `string ${quote(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return `an array of ${v.length} element(s)`;
  if (typeof v === 'object') {
    const keys = Object.keys(v as object);
    return keys.length === 0 ? 'an empty object' : `an object with keys ${keys.slice(0, 8).map((k) => quote(k, 60)).join(', ')}${keys.length > 8 ? ', …' : ''}`;
  }
  return typeof v;
}

/** A schema that takes a string and converts it with `fn`; a throw becomes an issue with `message(input, error)`. */
function convertedString<T>(fn: (s: string) => T, message: (s: string, e: Error) => string) {
  return z.string().transform((s, ctx) => {
    try {
      return fn(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: message(s, e as Error) });
      return z.NEVER;
    }
  });
}

/** Removes a leading `invalid … "<input>": ` that would repeat the input. */
function reason(e: Error): string {
  return e.message.replace(/^invalid [^"]*"(?:[^"\\]|\\.)*": /, '');
}

/** An absolute store path `/nix/store/<hash>-<name>`, no sub-path. */
export const zStorePath = convertedString(parseAbsolute, (_s, e) => e.message);

/** A deriver: an absolute store path whose name ends in `.drv`. */
export const zDrvPath = zStorePath.transform((p, ctx) => {
  if (!p.name.endsWith('.drv')) {
    ctx.addIssue({ code: 'custom', message: `expected the store path of a .drv file, got ${quote(absolute(p))}` });
    return z.NEVER;
  }
  return p;
});

/** `sha256:<nixbase32>` (what Nix writes in .attrs.json), SRI or hex → 32 raw bytes. */
export const zNarHash = convertedString(
  parseNarHash,
  (s, e) =>
    `expected sha256:<52 nixbase32 chars>, SRI (sha256-<44 base64 chars>) or hex (sha256:<64 hex chars>), got ${quote(s)}: ${reason(e)}`,
);

/** A byte count: a JSON number that is a non-negative safe integer. */
export const zSize = z.number().transform((n, ctx) => {
  if (!Number.isSafeInteger(n) || n < 0) {
    const what = n < 0 ? 'negative' : !Number.isInteger(n) ? 'not a whole number' : 'too large (above 2^53-1)';
    ctx.addIssue({ code: 'custom', message: `expected a non-negative integer of at most 2^53-1 bytes, got ${String(n)} (${what})` });
    return z.NEVER;
  }
  return n;
});

/** A content address (`fixed:r:sha256:…`, `fixed:…`, `text:sha256:…`); null or absent means none. */
export const zCa = convertedString(parseContentAddress, (_s, e) => e.message)
  .nullish()
  .transform((ca) => ca ?? undefined);

/** `<key name>:<base64 of 64 bytes>` */
export const zSignature = convertedString(parseSignature, (_s, e) => e.message);

/** `valid` may be absent or true; false means Nix does not have the path. */
export const zValid = z
  .boolean()
  .optional()
  .transform((v, ctx) => {
    if (v === false) {
      ctx.addIssue({ code: 'custom', message: 'false: the store does not have this path (not built or substituted)' });
      return z.NEVER;
    }
    return v;
  });

function fieldName(path: readonly PropertyKey[]): string {
  let s = '';
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s === '' ? String(k) : `.${String(k)}`;
  return s;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

const ARTICLE: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  array: 'an array',
  object: 'an object',
  null: 'null',
};

/** `field: problem; field: problem` for the issues zod found in `raw`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], raw: unknown): string {
  return issues
    .map((iss) => {
      const field = fieldName(iss.path);
      const value = valueAt(raw, iss.path);
      let msg: string;
      if (iss.code === 'invalid_type') {
        msg =
          value === undefined && iss.path.length > 0
            ? `missing (required)`
            : `expected ${ARTICLE[iss.expected] ?? iss.expected}, got ${describeValue(value)}`;
      } else {
        msg = iss.message;
      }
      return field === '' ? msg : `${field}: ${msg}`;
    })
    .join('; ');
}

/** Runs `schema` on one raw entry; failures become a ClosureError prefixed with `where`. */
export function parseEntry<S extends z.ZodType>(schema: S, raw: unknown, where: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (!r.success) throw new ClosureError(`${where}: ${formatIssues(r.error.issues, raw)}`);
  return r.data;
}

/** `<file>: <label>` plus ` (<path>)` when the raw entry has a string `path`. */
export function entryWhere(file: string, label: string, raw: unknown, path?: string): string {
  const p =
    path ??
    (raw !== null && typeof raw === 'object' && typeof (raw as { path?: unknown }).path === 'string'
      ? (raw as { path: string }).path
      : undefined);
  return p === undefined ? `${file}: ${label}` : `${file}: ${label} (${p.length > 200 ? p.slice(0, 200) + '…' : p})`;
}

/** Builds a normalised entry, leaving unknown optional fields out. */
export function makeEntry(e: {
  path: StorePath;
  narHash?: Uint8Array;
  narSize?: number;
  references: Iterable<StorePath>;
  deriver?: StorePath | null;
  ca?: { type: number; digest: Uint8Array } | null;
  signatures?: { name: string; data: Uint8Array }[] | null;
}): ClosureEntry {
  const out: ClosureEntry = { path: e.path, references: sortStorePaths(e.references), signatures: e.signatures ?? [] };
  if (e.narHash !== undefined) out.narHash = e.narHash;
  if (e.narSize !== undefined) out.narSize = e.narSize;
  if (e.deriver != null) out.deriver = e.deriver;
  if (e.ca != null) out.ca = e.ca;
  return out;
}

/** Reads `key` of a top-level JSON object, requiring an array there. */
export function requireArrayKey(top: unknown, key: string, file: string, hint = ''): unknown[] {
  if (top === null || typeof top !== 'object' || Array.isArray(top)) {
    throw new ClosureError(`${file}: expected a JSON object at the top level, got ${describeValue(top)}`);
  }
  if (!Object.prototype.hasOwnProperty.call(top, key)) {
    const keys = Object.keys(top);
    const present = keys.length === 0 ? 'none' : keys.map((k) => quote(k, 60)).join(', ');
    throw new ClosureError(`${file}: no top-level key ${quote(key)}; top-level keys present: ${present}${hint}`);
  }
  const v = (top as Record<string, unknown>)[key];
  if (!Array.isArray(v)) {
    throw new ClosureError(`${file}: ${quote(key)} must be an array of path-info objects, got ${describeValue(v)}`);
  }
  return v;
}
