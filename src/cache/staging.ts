// NARs received but not yet claimed by a narinfo. `nix copy --to` sends a
// NAR, then its narinfo in another request: in between, what the NAR
// became in the castore (its root node) is kept here, durably, so a daemon
// restarted between the two still accepts the narinfo. Keyed by the NAR's
// SHA-256, which the narinfo's NarHash names.
//
// Once published, the file's own name (`nar/<file hash>.nar.xz`, which Nix
// keeps in its local narinfo cache and asks for when it substitutes later)
// stays an alias of the store path it became.
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Node } from '../castore/messages.js';
import { writeDurably } from '../util/write-durably.js';

export interface StagedNar {
  narSha256: Buffer;
  narSize: number;
  /** The castore root the NAR became (named with the empty name). */
  root: Node;
  /** When it arrived (ms since the epoch). */
  stagedAt: number;
  /** SHA-256 of the file as uploaded (compressed): its name. */
  fileSha256: Buffer;
}

export interface NarStaging {
  /** Resolves once the record is durable. */
  put(nar: StagedNar): Promise<void>;
  get(narSha256: Uint8Array): Promise<StagedNar | undefined>;
  delete(narSha256: Uint8Array): Promise<void>;
  /** Forgets records older than `maxAgeMs`; returns how many. */
  expire(maxAgeMs: number): Promise<number>;
  /** Remembers that the uploaded file named by `fileSha256` is the NAR of this store path (32-char hash part). */
  putAlias(fileSha256: Uint8Array, storeHash: string): Promise<void>;
  getAlias(fileSha256: Uint8Array): Promise<string | undefined>;
  close?(): Promise<void>;
}

type Json = { narSha256: string; narSize: number; stagedAt: number; fileSha256: string; root: Record<string, unknown> };

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

export function encodeStaged(s: StagedNar): string {
  const n = s.root;
  const root: Record<string, unknown> =
    n.type === 'symlink'
      ? { type: n.type, target: b64(n.target) }
      : n.type === 'file'
        ? { type: n.type, digest: b64(n.digest), size: n.size, executable: n.executable }
        : { type: n.type, digest: b64(n.digest), size: n.size };
  return JSON.stringify({ narSha256: s.narSha256.toString('hex'), narSize: s.narSize, stagedAt: s.stagedAt, fileSha256: s.fileSha256.toString('hex'), root } satisfies Json);
}

export function decodeStaged(text: string): StagedNar {
  const j = JSON.parse(text) as Json;
  const r = j.root;
  const name = Buffer.alloc(0);
  const buf = (v: unknown) => Buffer.from(String(v), 'base64');
  let root: Node;
  if (r.type === 'symlink') root = { type: 'symlink', name, target: buf(r.target) };
  else if (r.type === 'file') root = { type: 'file', name, digest: buf(r.digest), size: Number(r.size), executable: r.executable === true };
  else if (r.type === 'directory') root = { type: 'directory', name, digest: buf(r.digest), size: Number(r.size) };
  else throw new Error(`staged NAR record with unknown root type ${JSON.stringify(r.type)}`);
  return { narSha256: Buffer.from(j.narSha256, 'hex'), narSize: j.narSize, stagedAt: j.stagedAt, fileSha256: Buffer.from(j.fileSha256, 'hex'), root };
}

const STORE_HASH_RE = /^[0-9a-df-np-sv-z]{32}$/;

export class MemoryStaging implements NarStaging {
  private readonly records = new Map<string, string>();
  private readonly aliases = new Map<string, string>();
  async putAlias(f: Uint8Array, storeHash: string) {
    this.aliases.set(Buffer.from(f).toString('hex'), storeHash);
  }
  async getAlias(f: Uint8Array) {
    return this.aliases.get(Buffer.from(f).toString('hex'));
  }
  async put(s: StagedNar) {
    this.records.set(s.narSha256.toString('hex'), encodeStaged(s));
  }
  async get(h: Uint8Array) {
    const t = this.records.get(Buffer.from(h).toString('hex'));
    return t === undefined ? undefined : decodeStaged(t);
  }
  async delete(h: Uint8Array) {
    this.records.delete(Buffer.from(h).toString('hex'));
  }
  async expire(maxAgeMs: number) {
    let n = 0;
    for (const [k, t] of this.records) {
      if (Date.now() - decodeStaged(t).stagedAt > maxAgeMs) {
        this.records.delete(k);
        n++;
      }
    }
    return n;
  }
}

/** One small JSON file per NAR, written to a temp file, fsynced and renamed into place. */
export class DiskStaging implements NarStaging {
  constructor(readonly dir: string) {}

  private file(h: Uint8Array): string {
    return join(this.dir, `${Buffer.from(h).toString('hex')}.json`);
  }

  private alias(f: Uint8Array): string {
    return join(this.dir, 'aliases', Buffer.from(f).toString('hex'));
  }

  put(s: StagedNar): Promise<void> {
    return writeDurably(this.file(s.narSha256), encodeStaged(s));
  }

  putAlias(f: Uint8Array, storeHash: string): Promise<void> {
    return writeDurably(this.alias(f), storeHash);
  }

  async getAlias(f: Uint8Array): Promise<string | undefined> {
    try {
      const t = (await readFile(this.alias(f), 'utf8')).trim();
      return STORE_HASH_RE.test(t) ? t : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async get(h: Uint8Array): Promise<StagedNar | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(h), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return decodeStaged(text);
  }

  async delete(h: Uint8Array): Promise<void> {
    await rm(this.file(h), { force: true });
  }

  async expire(maxAgeMs: number): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return 0;
    }
    let n = 0;
    for (const name of names) {
      const p = join(this.dir, name);
      const st = await stat(p).catch(() => undefined);
      // Records are files; `aliases/` (and realisations, beside them) are kept.
      if (st?.isFile() && Date.now() - st.mtimeMs > maxAgeMs) {
        await rm(p, { force: true });
        n++;
      }
    }
    return n;
  }
}
