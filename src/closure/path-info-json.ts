/**
 * `nix path-info --json [--recursive]` output (nix.md §5): an array of
 * path-info objects (Nix < 2.19) or an object keyed by store path (Nix ≥ 2.19).
 * narHash is SRI there (other forms accepted too), and the impure fields
 * deriver and signatures are carried over.
 */
import { z } from 'zod';
import { absolute, parseAbsolute } from '../nix/store-path.js';
import {
  ClosureError,
  checkClosedLabelled,
  describeValue,
  entryWhere,
  makeEntry,
  parseEntry,
  parseJsonText,
  zCa,
  zDrvPath,
  zNarHash,
  zSignature,
  zSize,
  zStorePath,
  zValid,
} from './closure.js';
import type { Closure, ClosureEntry } from './closure.js';

const fields = {
  narHash: zNarHash,
  narSize: zSize,
  references: z.array(zStorePath),
  deriver: zDrvPath.nullish(),
  ca: zCa,
  signatures: z.array(zSignature).nullish(),
  closureSize: zSize.nullish(),
  valid: zValid,
};

/** Array shape: each element names its path. */
const ArrayEntry = z.object({ path: zStorePath, ...fields });
/** Object shape: the key is the path; a `path` inside must agree with it. */
const ObjectEntry = z.object({ path: zStorePath.optional(), ...fields });

const NOT_VALID = 'the store does not have this path (not built or substituted); realise it before exporting its closure';

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Problems that make the rest of the entry irrelevant: invalid paths and unsupported format versions. */
function precheck(raw: unknown, where: string): void {
  if (!isObject(raw)) return; // the schema reports it
  if (raw.valid === false) throw new ClosureError(`${where}: valid: false: ${NOT_VALID}`);
  if (raw.version !== undefined && raw.version !== 1) {
    throw new ClosureError(
      `${where}: version: format version ${describeValue(raw.version)} is not supported ` +
        '(only the original format: narHash a string, ca a "fixed:…"/"text:…" string, references full store paths)',
    );
  }
}

/** `nix path-info --json [--recursive]` output: the array shape (Nix < 2.19) and the object keyed by path. */
export function parsePathInfoJson(text: string, opts: { file: string }): Closure {
  const file = opts.file;
  const top = parseJsonText(text, file);
  const label = (i: number) => `[${i}]`;
  const entries: ClosureEntry[] = [];

  if (Array.isArray(top)) {
    top.forEach((raw, i) => {
      const where = entryWhere(file, label(i), raw);
      precheck(raw, where);
      const e = parseEntry(ArrayEntry, raw, where);
      entries.push(makeEntry(e));
    });
  } else if (isObject(top)) {
    Object.entries(top).forEach(([key, raw], i) => {
      const where = entryWhere(file, label(i), raw, key);
      let path;
      try {
        path = parseAbsolute(key);
      } catch (e) {
        throw new ClosureError(`${where}: path (the object key): ${(e as Error).message}`);
      }
      if (raw === null) throw new ClosureError(`${where}: value is null (how Nix ≥ 2.19 reports an invalid path): ${NOT_VALID}`);
      precheck(raw, where);
      const e = parseEntry(ObjectEntry, raw, where);
      if (e.path !== undefined && absolute(e.path) !== absolute(path)) {
        throw new ClosureError(`${where}: path: ${JSON.stringify(absolute(e.path))} differs from the object key`);
      }
      entries.push(makeEntry({ ...e, path }));
    });
  } else {
    throw new ClosureError(
      `${file}: expected the output of nix path-info --json: an array (Nix < 2.19) or an object keyed by store path (Nix ≥ 2.19), got ${describeValue(top)}`,
    );
  }

  const closure: Closure = { entries, source: file };
  checkClosedLabelled(closure, label);
  return closure;
}
