// The roots of a collection of an on-disk store: pins and PathInfos, read
// completely (any error stops the collection before it deletes anything),
// the policy's decision, and — once PathInfo Puts are fenced off — the
// paths stored or pinned while it marked (the journal, the pins again).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiskLayout } from '../castore/disk/disk-layout.js';
import { DiskPins } from '../store/backends/disk-retention.js';
import { PathInfoCodec, type PathInfo } from '../store/messages.js';
import { decideWithPins, pinnedKeys, type KeptSet, type PolicyOptions } from './policy.js';
import { scanPathInfos, type ScannedPath } from './disk-scan.js';

export interface Roots {
  paths: Map<string, ScannedPath>;
  decision: KeptSet;
}

export async function readRoots(layout: DiskLayout, opts: PolicyOptions, warnings: string[]): Promise<Roots> {
  const pins = await new DiskPins(layout).list();
  const paths = await scanPathInfos(layout.root);
  return { paths, decision: decideWithPins(paths, pins, opts, warnings) };
}

/** Paths journalled by PathInfo Puts during the collection, and paths pinned meanwhile, that the decision did not keep. */
export async function lateKeys(layout: DiskLayout, roots: Roots): Promise<Set<string>> {
  const keys = new Set<string>();
  try {
    for (const line of (await readFile(layout.gc.journalFile, 'utf8')).split('\n')) if (/^[0-9a-f]{40}$/.test(line)) keys.add(line);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const k of pinnedKeys(await new DiskPins(layout).list(), roots.paths, [])) if (roots.paths.has(k) && !roots.decision.kept.has(k)) keys.add(k);
  return keys;
}

/** The PathInfo stored under `key` now, or undefined if there is none. */
export async function readPathInfo(root: string, key: string): Promise<PathInfo | undefined> {
  try {
    return PathInfoCodec.decode(await readFile(join(root, 'pathinfo', key.slice(0, 2), key)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
