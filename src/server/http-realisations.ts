// Realisations of content-addressed derivations (src/cache/realisations.ts)
// in the binary cache:
//
//   PUT       /realisations/<name>.doi  checked and kept (`nix copy --to`)
//   GET, HEAD /realisations/<name>.doi  what was kept, while its output is
//                                       in the store; else 404
//
// A realisation whose output the collector removed is not served: Nix would
// take it, then fail to substitute the path and build anyway.
import type { Store } from '../store/store.js';
import { checkRealisation, isRealisationKey, MAX_REALISATION_BYTES, RealisationError, signedByAny, type RealisationStore } from '../cache/realisations.js';
import { basename, parseBasename } from '../nix/store-path.js';
import type { PublicKey } from '../nix/signature.js';
import { MissingNarInfoError, nixPathInfo } from '../store/nix-view.js';
import { HttpError, sendText, type Exchange, type Route } from './http-exchange.js';
import { readBody } from './http-body.js';

export const REALISATION_PATH_RE = /^\/realisations\/(.+)\.doi$/;

export interface RealisationRoutesOptions {
  realisations: RealisationStore;
  /** When given, a realisation needs a valid signature by one of these, as narinfos do. */
  trustedKeys?: readonly PublicKey[];
}

export function realisationRoutes(store: Store, opts: RealisationRoutesOptions): Route[] {
  const trusted = opts.trustedKeys ?? [];

  function keyOf(m: RegExpExecArray): string {
    if (!isRealisationKey(m[1])) throw new HttpError(404, 'a realisation is named realisations/sha256:<64 hex>!<output>.doi or realisations/<derivation>.drv/<output>.doi');
    return m[1];
  }

  async function present(outPath: string): Promise<boolean> {
    const info = await store.pathInfos.get(parseBasename(outPath).digest);
    if (!info) return false;
    try {
      return basename(nixPathInfo(info).storePath) === outPath;
    } catch (err) {
      if (err instanceof MissingNarInfoError) return false;
      throw err;
    }
  }

  async function serve(x: Exchange, m: RegExpExecArray): Promise<void> {
    const key = keyOf(m);
    const json = await opts.realisations.get(key);
    if (json === undefined) throw new HttpError(404, `no realisation ${key}`);
    let outPath: string;
    try {
      outPath = checkRealisation(key, json).outPath;
    } catch (err) {
      if (err instanceof RealisationError) throw new HttpError(500, `the kept realisation ${key} is damaged: ${err.message}`);
      throw err;
    }
    if (!(await present(outPath))) throw new HttpError(404, `realisation ${key}: its output ${outPath} is not in the store`);
    sendText(x, 200, 'application/json', json);
  }

  async function put(x: Exchange, m: RegExpExecArray): Promise<void> {
    if (!isRealisationKey(m[1])) throw new HttpError(400, 'a realisation is uploaded as realisations/sha256:<64 hex>!<output>.doi or realisations/<derivation>.drv/<output>.doi');
    const key = m[1];
    const json = (await readBody(x, MAX_REALISATION_BYTES, 'a realisation')).toString('utf8');
    let checked;
    try {
      checked = checkRealisation(key, json);
    } catch (err) {
      if (err instanceof RealisationError) throw new HttpError(400, `realisation ${key}: ${err.message}`);
      throw err;
    }
    if (trusted.length > 0 && checked.fingerprint === undefined) {
      throw new HttpError(403, `realisation ${key}: only Nix 2.8's form (realisations/sha256:…!out.doi) can be checked against --trusted-upload-keys`);
    }
    if (trusted.length > 0 && !signedByAny(checked, trusted)) {
      throw new HttpError(403, `realisation ${key} carries no valid signature by a trusted upload key (Nix signs realisations it builds with secret-key-files)`);
    }
    await opts.realisations.put(key, json);
    sendText(x, 200, 'text/plain; charset=utf-8', 'accepted\n');
  }

  return [
    { methods: ['GET', 'HEAD'], path: REALISATION_PATH_RE, handle: serve },
    { methods: ['PUT'], writes: true, path: REALISATION_PATH_RE, handle: put },
  ];
}
