/**
 * The structured-attrs `.attrs.json` of a Nix build (closure.md §1.1, §4;
 * nix.md §3): the top-level key named after the exportReferencesGraph
 * attribute holds an array of path-info objects.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  checkClosedLabelled,
  entryWhere,
  makeEntry,
  parseEntry,
  parseJsonText,
  requireArrayKey,
  zCa,
  zNarHash,
  zSize,
  zStorePath,
  zValid,
} from './closure.js';
import type { Closure } from './closure.js';

/**
 * One element of the exported closure. Nix always writes path, narHash
 * (`sha256:` + nixbase32), narSize, references and closureSize; `valid` since
 * Nix 2.4; `ca` only for content-addressed paths. Unknown keys are ignored,
 * and so are deriver/signatures (Nix never writes them here).
 */
const AttrsEntry = z.object({
  path: zStorePath,
  narHash: zNarHash,
  narSize: zSize,
  references: z.array(zStorePath),
  closureSize: zSize.optional(),
  valid: zValid,
  ca: zCa,
});

/** Parses the text of a structured-attrs .attrs.json; reads key `key` (default 'closure'). `file` is only for messages. */
export function parseAttrsJson(text: string, opts: { key?: string; file: string }): Closure {
  const key = opts.key ?? 'closure';
  const file = opts.file;
  const top = parseJsonText(text, file);
  let hint = '';
  if (top !== null && typeof top === 'object' && !Array.isArray(top)) {
    const erg = (top as Record<string, unknown>).exportReferencesGraph;
    if (erg !== null && typeof erg === 'object' && !Array.isArray(erg)) {
      const keys = Object.keys(erg);
      if (keys.length > 0) hint = ` (exportReferencesGraph exports: ${keys.map((k) => JSON.stringify(k)).join(', ')})`;
    } else if (erg === undefined) {
      hint = ' (is the build using __structuredAttrs = true and exportReferencesGraph.<key> = [ … ]?)';
    }
  }
  const raw = requireArrayKey(top, key, file, hint);
  const label = (i: number) => `${key}[${i}]`;
  const entries = raw.map((r, i) => {
    const e = parseEntry(AttrsEntry, r, entryWhere(file, label(i), r));
    return makeEntry({ path: e.path, narHash: e.narHash, narSize: e.narSize, references: e.references, ca: e.ca });
  });
  const closure: Closure = { entries, source: file };
  checkClosedLabelled(closure, label);
  return closure;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * Where copy finds .attrs.json when no --attrs is given: $NIX_ATTRS_JSON_FILE
 * if that file exists, else $NIX_BUILD_TOP/.attrs.json if it exists, else
 * undefined (nix.md §3: Nix 2.8 sets the env var to a wrong path in sandboxed
 * builds).
 */
export function findAttrsJson(env: NodeJS.ProcessEnv): string | undefined {
  const direct = env.NIX_ATTRS_JSON_FILE;
  if (direct && isFile(direct)) return direct;
  const top = env.NIX_BUILD_TOP;
  if (top) {
    const p = join(top, '.attrs.json');
    if (isFile(p)) return p;
  }
  return undefined;
}
