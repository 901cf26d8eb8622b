// Small store paths for the collected-reference tests: one file each, with
// the references given, uploaded as copy would (content, then PathInfo).
import type { Store } from '../../src/store/store.js';
import type { PathInfo } from '../../src/store/messages.js';
import type { Node } from '../../src/castore/messages.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { parseAbsolute } from '../../src/nix/store-path.js';

/** The PathInfo of `path`: a file holding `text`, referring to `refs` (absolute store paths). */
export async function pathInfoOf(store: Store, path: string, text: string, refs: string[]): Promise<PathInfo> {
  const bytes = Buffer.from(text);
  const digest = await putBytes(store.blobs, bytes);
  const node: Node = { type: 'file', name: Buffer.from(path.slice(11)), digest, size: bytes.length, executable: false };
  const nar = await store.pathInfos.calculateNar(node);
  return {
    node,
    references: refs.map((r) => parseAbsolute(r).digest),
    narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: refs.map((r) => r.slice(11)) },
  };
}

/** Uploads the blob, then the PathInfo. */
export async function putPath(store: Store, path: string, text: string, refs: string[]): Promise<PathInfo> {
  return store.pathInfos.put(await pathInfoOf(store, path, text, refs));
}
