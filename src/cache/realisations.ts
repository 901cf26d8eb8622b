// Realisations of content-addressed derivations (ca-derivations), as
// `nix copy --to` uploads them and Nix asks for them before building one:
// which store path a derivation's output became. Kept verbatim, by the
// name Nix gives them:
//
//   Nix 2.8 to 2.2x   realisations/sha256:<64 hex>!<output>.doi
//   later Nix         realisations/<hash>-<name>.drv/<output>.doi
//
// The JSON is checked before it is kept (an object naming a valid outPath:
// a basename from Nix 2.8, a whole store path from later Nix; Nix 2.8's also
// its own id) and again when it is read back.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basename, isValidName, parseAbsolute, parseBasename, StorePathError } from '../nix/store-path.js';
import { parseSignature, verifyAny, type PublicKey } from '../nix/signature.js';
import { writeDurably } from '../util/write-durably.js';

/** A realisation's JSON is small; this bounds what is read and kept (a few thousand dependencies). */
export const MAX_REALISATION_BYTES = 1 << 20;

export interface RealisationStore {
  /** Replaces any realisation of the same name (as Nix's own caches do); resolves once durable. */
  put(key: string, json: string): Promise<void>;
  get(key: string): Promise<string | undefined>;
  close?(): Promise<void>;
}

export class RealisationError extends Error {}

const HASH_KEY_RE = /^sha256:[0-9a-f]{64}!(.+)$/;

/** Whether `key` (the URL's name without `realisations/` and `.doi`) names a realisation. */
export function isRealisationKey(key: string): boolean {
  const m = HASH_KEY_RE.exec(key);
  if (m) return isValidName(m[1]);
  const slash = key.indexOf('/');
  if (slash < 0 || key.indexOf('/', slash + 1) >= 0) return false;
  const drv = key.slice(0, slash);
  if (!drv.endsWith('.drv') || !isValidName(key.slice(slash + 1))) return false;
  try {
    parseBasename(drv);
    return true;
  } catch (err) {
    if (err instanceof StorePathError) return false;
    throw err;
  }
}

export interface CheckedRealisation {
  /** The output's store path basename (as uploaded, Nix 2.8; or of the absolute path later Nix writes). */
  outPath: string;
  signatures: string[];
  /** What its signatures sign (Nix 2.8's form; undefined for other forms). */
  fingerprint?: string;
}

/** Parses and checks a realisation uploaded or kept under `key`. */
export function checkRealisation(key: string, json: string): CheckedRealisation {
  let j: unknown;
  try {
    j = JSON.parse(json);
  } catch (err) {
    throw new RealisationError(`not JSON: ${(err as Error).message}`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new RealisationError('not a JSON object');
  const r = j as Record<string, unknown>;
  if (typeof r.outPath !== 'string') throw new RealisationError('no outPath');
  // Nix 2.8 writes the basename, later Nix the whole store path.
  let outPath: string;
  try {
    outPath = basename(r.outPath.startsWith('/') ? parseAbsolute(r.outPath) : parseBasename(r.outPath));
  } catch (err) {
    throw new RealisationError(`outPath: ${(err as Error).message}`);
  }
  const signatures = r.signatures ?? [];
  if (!Array.isArray(signatures) || !signatures.every((s) => typeof s === 'string')) throw new RealisationError('signatures is not a list of strings');
  const deps = r.dependentRealisations ?? {};
  if (typeof deps !== 'object' || deps === null || Array.isArray(deps) || !Object.values(deps).every((v) => typeof v === 'string')) {
    throw new RealisationError('dependentRealisations is not an object of strings');
  }
  if (!HASH_KEY_RE.test(key)) return { outPath, signatures };
  if (r.id !== key) throw new RealisationError(`its id ${JSON.stringify(r.id)} is not the name it was uploaded as (${key})`);
  // nlohmann::json's dump of the object without its signatures: keys sorted, no spaces.
  const sortedDeps = Object.fromEntries(Object.entries(deps as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const fingerprint = JSON.stringify({ dependentRealisations: sortedDeps, id: key, outPath: r.outPath });
  return { outPath, signatures, fingerprint };
}

/** Whether one of its signatures is valid by one of `keys`. */
export function signedByAny(r: CheckedRealisation, keys: readonly PublicKey[]): boolean {
  if (r.fingerprint === undefined) return false;
  const sigs = [];
  for (const s of r.signatures) {
    try {
      sigs.push(parseSignature(s));
    } catch {
      // A malformed signature vouches for nothing; others may.
    }
  }
  return verifyAny(r.fingerprint, sigs, keys);
}

export class MemoryRealisations implements RealisationStore {
  private readonly byKey = new Map<string, string>();
  async put(key: string, json: string) {
    this.byKey.set(key, json);
  }
  async get(key: string) {
    return this.byKey.get(key);
  }
}

/** One file per realisation, named by the SHA-256 of its name (names hold '/' and can be long). */
export class DiskRealisations implements RealisationStore {
  constructor(readonly dir: string) {}

  private file(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex')}.json`);
  }

  put(key: string, json: string): Promise<void> {
    return writeDurably(this.file(key), json, 0o644);
  }

  async get(key: string): Promise<string | undefined> {
    try {
      return await readFile(this.file(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}
