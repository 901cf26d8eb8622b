// After the fence (no PathInfo Put runs until the deletions are done): what
// was stored or pinned while the collector marked is kept, with its closure
// and content, and so is every directory stored since the plans were made
// (and what it refers to). Marks made now are recorded apart (`marks.late`)
// and spare whatever the plans condemned that they need: a condemned pack
// holding one of them stays whole (its dead directories then survive too,
// which may spare more), a doomed loose file stays.
import { join } from 'node:path';
import type { DiskLayout } from '../castore/disk/disk-layout.js';
import { listPacks } from '../castore/disk/pack-gc.js';
import { forEachIndexEntry } from './pack-index-stream.js';
import { isLive, type DiskPlan } from './disk-plan.js';
import { lateKeys, readPathInfo, type Roots } from './disk-roots.js';
import type { Marks } from './marks.js';

/**
 * Marks what late PathInfos and directories need, spares the plans
 * accordingly; returns the paths spared. `ownPacks`: packs the rewrite
 * wrote (copies of live records, marked already).
 */
export async function spareLate(layout: DiskLayout, roots: Roots, marks: Marks, plan: DiskPlan, ownPacks: Set<string>): Promise<Set<string>> {
  const late = marks.recordLate();
  const spared = new Set<string>();
  for (const key of await lateKeys(layout, roots)) {
    const info = await readPathInfo(layout.root, key);
    if (!info) continue;
    spared.add(key);
    if (info.node) await marks.node(info.node, true);
    // Its closure is kept too, with its content.
    const todo = info.references.map((r) => Buffer.from(r).toString('hex'));
    while (todo.length > 0) {
      const k = todo.pop()!;
      if (spared.has(k)) continue;
      spared.add(k);
      const p = roots.paths.get(k);
      if (!p || roots.decision.kept.has(k)) continue;
      await marks.node(p.node, true);
      todo.push(...p.refs);
    }
  }
  // Directories stored since the plans were made survive, and so does what they refer to.
  const dirPacks = join(layout.root, 'directory-packs');
  const planned = new Map(plan.ofKind('dir').map((p) => [p.pack.name, p.count]));
  for (const pack of await listPacks(dirPacks)) {
    if (pack.orphan || ownPacks.has(pack.name)) continue;
    await forEachIndexEntry(dirPacks, pack.name, (b, at) => marks.directory(Buffer.from(b.subarray(at, at + 32)), false), planned.get(pack.name) ?? 0);
  }
  // Spare what the late marks need, until nothing changes.
  for (let changed = true; changed; ) {
    changed = false;
    for (const p of plan.plans) {
      if (p.fate === 'keep' || p.count === 0) continue;
      const set = p.kind === 'dir' ? late.dirs : late.blobs;
      let needed = false;
      await forEachIndexEntry(p.dir, p.pack.name, (b, at, i) => {
        if (!needed && i < p.count && !isLive(p, i) && set.has(b, at)) needed = true;
      });
      if (!needed) continue;
      p.fate = 'keep';
      changed = true;
      if (p.kind === 'dir') await plan.walkDead(p);
    }
  }
  return spared;
}
