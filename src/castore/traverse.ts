// Breadth-first walk of a directory closure for backends that store every
// directory individually: root first, each directory once.
import type { Directory } from './messages.js';
import { b3Hex, b3String } from './digest.js';
import { CastoreError } from './errors.js';

/**
 * Each directory is loaded only when it is its turn and yielded at once:
 * a consumer that stops (its client went away) stops the walk after one
 * load, even under a directory of tens of thousands of subdirectories.
 */
export async function* walkClosure(
  root: Uint8Array,
  get: (digest: Uint8Array) => Promise<Directory | undefined>,
): AsyncGenerator<Directory> {
  const first = await get(root);
  if (!first) return; // absent root: an empty stream (tvix HEAD behaviour)
  const seen = new Set<string>([b3Hex(root)]);
  const queue: Uint8Array[] = [];
  let head = 0;
  const enqueueChildren = (dir: Directory) => {
    for (const child of dir.directories) {
      const key = b3Hex(child.digest);
      if (seen.has(key)) continue;
      seen.add(key);
      queue.push(child.digest);
    }
  };
  yield first;
  enqueueChildren(first);
  while (head < queue.length) {
    const digest = queue[head];
    queue[head++] = undefined as never;
    const d = await get(digest);
    if (!d) throw new CastoreError('internal', `directory ${b3String(digest)} is referenced but missing`);
    yield d;
    enqueueChildren(d);
  }
}
