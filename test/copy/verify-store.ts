// Checks a store against Nix for a set of paths: the PathInfo exists, its NAR
// hash and size equal `nix path-info`'s, CalculateNAR agrees, and the NAR
// rendered back from the castore equals `nix-store --dump` byte for byte.
import assert from 'node:assert/strict';
import type { Store } from '../../src/addr/open.js';
import { parseAbsolute, basename } from '../../src/nix/store-path.js';
import { parseNarHash } from '../../src/nix/hash.js';
import { renderNar } from '../../src/store/render-nar.js';
import { nixPathInfo, nixStoreDump } from '../helpers/nix.js';

export async function assertStoreMatchesNix(store: Store, paths: string[]): Promise<void> {
  if (paths.length === 0) return; // `nix path-info` without paths would evaluate the flake in the cwd
  const infos = await nixPathInfo(paths);
  for (const nix of infos) {
    const sp = parseAbsolute(nix.path);
    const info = await store.pathInfos.get(sp.digest);
    assert.ok(info, `${nix.path} has a PathInfo`);
    assert.equal(Buffer.from(info.node!.name).toString(), basename(sp));
    assert.equal(info.narinfo!.narSize, nix.narSize, `${nix.path} narSize`);
    assert.deepEqual(Buffer.from(info.narinfo!.narSha256), Buffer.from(parseNarHash(nix.narHash!)), `${nix.path} narHash`);
    assert.deepEqual(info.narinfo!.referenceNames, [...(nix.references ?? [])].map((r) => basename(parseAbsolute(r))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), `${nix.path} references`);
    const calc = await store.pathInfos.calculateNar(info.node!);
    assert.equal(calc.narSize, nix.narSize, `${nix.path} CalculateNAR size`);
    assert.deepEqual(Buffer.from(calc.narSha256), Buffer.from(parseNarHash(nix.narHash!)), `${nix.path} CalculateNAR hash`);
    const parts: Uint8Array[] = [];
    for await (const c of renderNar(info.node!, store)) parts.push(c);
    assert.ok(Buffer.concat(parts).equals(await nixStoreDump(nix.path)), `${nix.path}: NAR from the store = nix-store --dump`);
  }
}

export async function publishedPaths(store: Store): Promise<string[]> {
  const out: string[] = [];
  for await (const i of store.pathInfos.list()) out.push(`/nix/store/${Buffer.from(i.node!.name).toString()}`);
  return out.sort();
}
