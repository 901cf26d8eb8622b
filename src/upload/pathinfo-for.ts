// The PathInfo copy publishes for one closure entry (closure.md §2 shape,
// plus deriver, ca and signatures when known).
import type { Node } from '../castore/messages.js';
import type { PathInfo } from '../store/messages.js';
import type { ClosureEntry } from '../closure/closure.js';
import { basename } from '../nix/store-path.js';
import { fingerprint, sign, type SecretKey } from '../nix/signature.js';

export function pathInfoFor(entry: ClosureEntry, root: Node, narSha256: Uint8Array, narSize: number, key?: SecretKey): PathInfo {
  const signatures = [...entry.signatures];
  if (key) {
    const fp = fingerprint(entry.path, narSha256, narSize, entry.references);
    const sig = sign(fp, key);
    if (!signatures.some((s) => s.name === sig.name)) signatures.push(sig);
  }
  const deriver = entry.deriver && {
    name: entry.deriver.name.endsWith('.drv') ? entry.deriver.name.slice(0, -'.drv'.length) : entry.deriver.name,
    digest: entry.deriver.digest,
  };
  return {
    node: { ...root, name: Buffer.from(basename(entry.path)) },
    references: entry.references.map((r) => r.digest),
    narinfo: {
      narSize,
      narSha256,
      signatures,
      referenceNames: entry.references.map(basename),
      ...(deriver ? { deriver } : {}),
      ...(entry.ca ? { ca: entry.ca } : {}),
    },
  };
}
