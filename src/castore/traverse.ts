// Breadth-first walk of a directory closure for backends that store every
// directory individually: root first, each directory once.
import type { Directory } from './messages.js';
import { b3Hex, b3String } from './digest.js';
import { CastoreError } from './errors.js';

/**
 * Each directory is loaded at most `ahead` places before its turn and
 * yielded at once: a consumer that stops (its client went away) stops the
 * walk after at most `ahead` loads, even under a directory of tens of
 * thousands of subdirectories. A store whose loads are round trips gives
 * `ahead` > 1 so they overlap (and its batcher joins them): one at a time,
 * checking a PathInfo of 3,000 directories took seconds.
 */
export async function* walkClosure(
  root: Uint8Array,
  get: (digest: Uint8Array) => Promise<Directory | undefined>,
  ahead = 1,
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
  /** loads[i]: queue[i]'s load, once started. */
  const loads: (Promise<Directory | undefined> | undefined)[] = [];
  let started = 0;
  while (head < queue.length) {
    for (; started < queue.length && started < head + ahead; started++) {
      const p = get(queue[started]);
      p.catch(() => {}); // awaited in its turn (or never, if the consumer stops)
      loads[started] = p;
    }
    const digest = queue[head];
    const d = await loads[head];
    queue[head] = undefined as never;
    loads[head++] = undefined;
    if (!d) throw new CastoreError('internal', `directory ${b3String(digest)} is referenced but missing`);
    yield d;
    enqueueChildren(d);
  }
}
