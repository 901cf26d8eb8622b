import { readlinkSync, lstatSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { parse, UsageError, type Command } from '../util/usage.js';
import { effectiveConfig } from '../addr/config.js';
import { openStore, type Store } from '../addr/open.js';
import { parseAddr } from '../addr/parse.js';
import { existingStoreDir } from './store-root.js';
import { b3String } from '../castore/digest.js';
import type { Node } from '../castore/messages.js';
import type { PathInfo } from '../store/messages.js';
import { contentAddressOf, lookupStorePath } from '../store/nix-view.js';
import { formatContentAddress, formatNix32, formatSri, toBase64 } from '../nix/hash.js';
import * as nixbase32 from '../nix/nixbase32.js';
import { isValidKeyName } from '../nix/signature.js';
import { STORE_DIR, absolute, parseAbsolute, parseBasename, sortStorePaths, type StorePath } from '../nix/store-path.js';

const HELP = `Usage: nix-castore path-info [--store ADDR] [--json] STOREPATH...

Prints what the store knows about each store path: NAR hash and size,
references, deriver, signatures, content address, and the castore root
node (type and BLAKE3 digest).

STOREPATH is /nix/store/<hash>-<name>, its basename, or a symlink to one
(such as a result link).

Options:
      --store ADDR  the store to ask (otherwise PATH_INFO_SERVICE_ADDR etc.,
                    the config file, then grpc+http://[::1]:8000); also
                    file:///abs/dir or grpc+unix:///socket.
      --json        a JSON array like 'nix path-info --json' (Nix 2.8: SRI
                    narHash, full reference paths) plus "root"; paths not in
                    the store appear as {"path": …, "valid": false}.
  -h, --help        show this help.

Exit status: 0 all paths found, 1 some paths are not in the store, 2 bad
input or usage.`;

/**
 * A store path from the command line: `/nix/store/<hash>-<name>`, the
 * basename alone, or a symlink (e.g. `./result`) pointing at one.
 * Sub-paths are refused. Throws UsageError.
 */
export function parseStorePathArg(arg: string): StorePath {
  // As a shell's completion leaves it: /nix/store/…-name/ or ./result/.
  if (arg.length > 1) arg = arg.replace(/\/+$/, '');
  const direct = tryParse(arg);
  if (direct) return direct;
  let target: string | undefined;
  try {
    if (lstatSync(arg).isSymbolicLink()) target = resolve(dirname(arg), readlinkSync(arg));
  } catch {
    // not a file either: fall through to the error below
  }
  const linked = target === undefined ? undefined : tryParse(target);
  if (linked) return linked;
  try {
    parseAbsolute(target ?? arg);
  } catch (err) {
    throw new UsageError(`${JSON.stringify(arg)} is not a store path: ${(err as Error).message}`);
  }
  throw new UsageError(`${JSON.stringify(arg)} is not a store path`);
}

function tryParse(s: string): StorePath | undefined {
  try {
    return s.startsWith('/') ? parseAbsolute(s) : parseBasename(s);
  } catch {
    return undefined;
  }
}

/**
 * Opens the store chosen by --store / env / config file, as copy does.
 * `readOnly`: the command names itself, and an on-disk store must exist.
 */
export async function openConfiguredStore(store: string | undefined, readOnly?: string): Promise<{ store: Store; where: string; addrs: string[] }> {
  const config = await effectiveConfig({ store });
  const addrs = [config.blobServiceAddr, config.directoryServiceAddr, config.pathInfoServiceAddr];
  for (const a of addrs) {
    const parsed = parseAddr(a);
    if (readOnly && parsed.kind === 'file') existingStoreDir(parsed.root, readOnly);
  }
  return {
    store: openStore({ blob: addrs[0], directory: addrs[1], pathInfo: addrs[2] }),
    where: config.pathInfoServiceAddr,
    addrs,
  };
}

function showSignature(s: { name: string; data: Uint8Array }): string {
  return `${isValidKeyName(s.name) ? s.name : JSON.stringify(s.name)}:${toBase64(s.data)}`;
}

function rootJson(node: Node): Record<string, unknown> {
  switch (node.type) {
    case 'directory':
      return { type: 'directory', digest: b3String(node.digest), size: node.size };
    case 'file':
      return { type: 'file', digest: b3String(node.digest), size: node.size, executable: node.executable };
    case 'symlink':
      return { type: 'symlink', target: Buffer.from(node.target).toString('utf8') };
  }
}

function rootText(node: Node): string {
  switch (node.type) {
    case 'directory':
      return `directory ${b3String(node.digest)} (size ${node.size})`;
    case 'file':
      return `${node.executable ? 'executable ' : ''}file ${b3String(node.digest)} (${node.size} bytes)`;
    case 'symlink':
      return `symlink -> ${JSON.stringify(Buffer.from(node.target).toString('utf8'))}`;
  }
}

function references(info: PathInfo): string[] {
  const names = info.narinfo?.referenceNames ?? [];
  try {
    return sortStorePaths(names.map(parseBasename)).map(absolute);
  } catch {
    return names.map((n) => `${STORE_DIR}/${n}`);
  }
}

function deriverPath(info: PathInfo): string | null {
  const d = info.narinfo?.deriver;
  return d ? `${STORE_DIR}/${nixbase32.encode(d.digest)}-${d.name}.drv` : null;
}

function caString(info: PathInfo): string | null {
  const ca = contentAddressOf(info);
  return ca ? formatContentAddress(ca) : null;
}

export function pathInfoJson(path: string, info: PathInfo): Record<string, unknown> {
  const ni = info.narinfo;
  const hash = ni && ni.narSha256.length === 32 ? ni.narSha256 : undefined;
  return {
    path,
    narHash: hash ? formatSri(hash) : null,
    narSize: ni ? ni.narSize : null,
    references: references(info),
    deriver: deriverPath(info),
    signatures: (ni?.signatures ?? []).map(showSignature),
    ca: caString(info),
    ...(info.node && { root: rootJson(info.node) }),
  };
}

function pathInfoText(path: string, info: PathInfo): string {
  const ni = info.narinfo;
  const lines = [`StorePath: ${path}`];
  if (ni && ni.narSha256.length === 32) lines.push(`NarHash: ${formatNix32(ni.narSha256)}`, `NarSize: ${ni.narSize}`);
  else lines.push('NarHash: (none recorded)');
  lines.push(`References: ${references(info).join(' ')}`);
  const deriver = deriverPath(info);
  if (deriver) lines.push(`Deriver: ${deriver}`);
  for (const s of ni?.signatures ?? []) lines.push(`Sig: ${showSignature(s)}`);
  const ca = caString(info);
  if (ca) lines.push(`CA: ${ca}`);
  if (info.node) lines.push(`Root: ${rootText(info.node)}`);
  return lines.join('\n');
}

export const pathInfoCommand: Command = {
  name: 'path-info',
  summary: 'show what the store knows about store paths',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(argv, { store: { type: 'string' }, json: { type: 'boolean' } }, true);
    if (positionals.length === 0) throw new UsageError('give at least one store path, e.g. /nix/store/<hash>-<name>');
    const paths = positionals.map(parseStorePathArg);
    const { store, where } = await openConfiguredStore(values.store, 'path-info');
    let missing = 0;
    const json: Record<string, unknown>[] = [];
    const text: string[] = [];
    try {
      for (const sp of paths) {
        const path = absolute(sp);
        const info = await lookupStorePath(store.pathInfos, sp);
        if (!info) {
          missing++;
          console.error(`nix-castore: ${path} is not in the store (${where})`);
          json.push({ path, valid: false });
          continue;
        }
        json.push(pathInfoJson(path, info));
        text.push(pathInfoText(path, info));
      }
    } finally {
      await store.close();
    }
    if (values.json) console.log(JSON.stringify(json, null, 2));
    else if (text.length > 0) console.log(text.join('\n\n'));
    return missing > 0 ? 1 : 0;
  },
};
