// The PathInfoService interface: Nix metadata for store paths, keyed by the
// 20-byte store-path digest.
import type { PathInfo, CalculateNarResponse } from './messages.js';
import type { Node } from '../castore/messages.js';
import type { PathInfoStats } from '../castore/object-stats.js';

export interface PathInfoService {
  get(storeDigest: Uint8Array): Promise<PathInfo | undefined>;
  /**
   * Validates and stores; refused while the root node's content is missing.
   * Once `signal` aborts (the client went away) the content check stops and
   * nothing is stored.
   */
  put(info: PathInfo, signal?: AbortSignal): Promise<PathInfo>;
  list(): AsyncIterable<PathInfo>;
  /** NAR size and SHA-256 of `node`, rendered from the castore behind it; stops with an error once `signal` aborts. */
  calculateNar(node: Node, signal?: AbortSignal): Promise<CalculateNarResponse>;
  close(): Promise<void>;
  /** How many PathInfos it holds and the sum of their NAR sizes (a full count: call it seldom). */
  stats?(): Promise<PathInfoStats>;
}
