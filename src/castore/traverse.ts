// Breadth-first walk of a directory closure for backends that store every
// directory individually: root first, each directory once.
import type { Directory } from './messages.js';
import { b3Hex, b3String } from './digest.js';
import { CastoreError } from './errors.js';

export async function* walkClosure(
  root: Uint8Array,
  get: (digest: Uint8Array) => Promise<Directory | undefined>,
): AsyncGenerator<Directory> {
  const first = await get(root);
  if (!first) return; // absent root: an empty stream (tvix HEAD behaviour)
  const sent = new Set<string>([b3Hex(root)]);
  const queue: Directory[] = [first];
  while (queue.length > 0) {
    const dir = queue.shift()!;
    yield dir;
    for (const child of dir.directories) {
      const key = b3Hex(child.digest);
      if (sent.has(key)) continue;
      sent.add(key);
      const d = await get(child.digest);
      if (!d) throw new CastoreError('internal', `directory ${b3String(child.digest)} is referenced but missing`);
      queue.push(d);
    }
  }
}
