// An existing Nix binary cache to read from: a `file://` directory (as
// `nix copy --to file://…` writes it) or an `http(s)://` cache. Only the
// shapes Nix names are read: `<32-char hash>.narinfo` and the narinfo's
// `nar/…` URL, checked before any file is opened or requested.
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as nixbase32 from '../nix/nixbase32.js';

export interface CacheSource {
  /** For messages. */
  readonly where: string;
  /** Every narinfo's store hash, when the cache can be listed (file:// only). */
  list?(): AsyncIterable<string>;
  /** The narinfo text of a store hash, or undefined when the cache lacks it. */
  narInfo(storeHash: string): Promise<string | undefined>;
  /** The file at a narinfo's URL. */
  nar(url: string): Promise<AsyncIterable<Uint8Array>>;
}

export class SourceError extends Error {
  override name = 'SourceError';
}

const HASH_RE = new RegExp(`^[${nixbase32.ALPHABET}]{32}$`);
/** `nar/<name>.nar[.ext]`: no other relative URL is followed (no `..`, no absolute URLs). */
const NAR_URL_RE = /^nar\/[0-9a-z-]{1,128}\.nar(\.[a-z0-9]{1,8})?$/;
const MAX_NARINFO_BYTES = 1 << 20;
/** A narinfo is small: a server that takes longer than this is not answering. */
const NARINFO_TIMEOUT_MS = 60_000;

function checkUrl(url: string): void {
  if (!NAR_URL_RE.test(url)) throw new SourceError(`narinfo URL ${JSON.stringify(url)} is not of the form nar/<name>.nar[.ext]`);
}

export function openSource(source: string, authToken?: string): CacheSource {
  if (source.startsWith('file://')) return fileSource(fileURLToPath(source));
  if (/^https?:\/\//.test(source)) return httpSource(source.replace(/\/+$/, ''), authToken);
  if (source.startsWith('/')) return fileSource(source);
  throw new SourceError(`${JSON.stringify(source)}: expected file:///abs/dir, /abs/dir or http(s)://host[:port][/path]`);
}

function fileSource(dir: string): CacheSource {
  return {
    where: `file://${dir}`,
    async *list() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (err) {
        throw new SourceError(`cannot list ${dir}: ${(err as Error).message}`);
      }
      // `nix copy --to file://` always writes nix-cache-info: without it (and any narinfo) this is not a binary cache.
      if (!names.includes('nix-cache-info') && !names.some((n) => n.endsWith('.narinfo'))) {
        throw new SourceError(`${dir} is not a Nix binary cache: it has no nix-cache-info and no .narinfo files`);
      }
      for (const n of names.sort()) {
        const m = /^(.{32})\.narinfo$/.exec(n);
        if (m && HASH_RE.test(m[1])) yield m[1];
      }
    },
    async narInfo(h) {
      if (!HASH_RE.test(h)) throw new SourceError(`${JSON.stringify(h)} is not a store hash`);
      try {
        const text = await readFile(join(dir, `${h}.narinfo`));
        if (text.length > MAX_NARINFO_BYTES) throw new SourceError(`${h}.narinfo is larger than ${MAX_NARINFO_BYTES} bytes`);
        return text.toString('utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async nar(url) {
      checkUrl(url);
      const s = createReadStream(join(dir, url), { highWaterMark: 1 << 20 });
      await new Promise<void>((resolve, reject) => {
        s.once('open', () => resolve());
        s.once('error', (err) => reject(new SourceError(`cannot read ${join(dir, url)}: ${err.message}`)));
      });
      return s;
    },
  };
}

function httpSource(base: string, authToken?: string): CacheSource {
  const headers: Record<string, string> = authToken ? { authorization: `Bearer ${authToken}` } : {};
  async function get(path: string, timeoutMs?: number): Promise<Response | undefined> {
    let res: Response;
    try {
      res = await fetch(`${base}/${path}`, { headers, ...(timeoutMs && { signal: AbortSignal.timeout(timeoutMs) }) });
    } catch (err) {
      throw new SourceError(`cannot reach ${base}/${path}: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`);
    }
    if (res.status === 404 || res.status === 403) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new SourceError(`${base}/${path}: HTTP ${res.status} ${res.statusText}${res.status === 401 ? ' (set NIX_CASTORE_AUTH_TOKEN_FILE to send a token)' : ''}`);
    }
    return res;
  }
  return {
    where: base,
    async narInfo(h) {
      if (!HASH_RE.test(h)) throw new SourceError(`${JSON.stringify(h)} is not a store hash`);
      const res = await get(`${h}.narinfo`, NARINFO_TIMEOUT_MS);
      if (!res) return undefined;
      const len = Number(res.headers.get('content-length') ?? 0);
      if (len > MAX_NARINFO_BYTES) {
        await res.body?.cancel();
        throw new SourceError(`${h}.narinfo is larger than ${MAX_NARINFO_BYTES} bytes`);
      }
      const text = await res.text();
      if (text.length > MAX_NARINFO_BYTES) throw new SourceError(`${h}.narinfo is larger than ${MAX_NARINFO_BYTES} bytes`);
      return text;
    },
    async nar(url) {
      checkUrl(url);
      const res = await get(url);
      if (!res?.body) throw new SourceError(`${base}/${url}: not found`);
      return res.body as unknown as AsyncIterable<Uint8Array>;
    },
  };
}
