// Where a daemon keeps staged NARs (staging.ts): beside the on-disk store's
// data, in the scale-out store's PostgreSQL (shared by all its daemons), in
// memory for a memory store, else in a local state directory
// (`--upload-staging DIR` overrides all of these).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseAddr } from '../addr/parse.js';
import { DiskStaging, MemoryStaging, type NarStaging } from './staging.js';
import { PgStaging } from './pg-staging.js';

export function defaultStagingDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'nix-castore', 'staged-nars');
}

/** `pathInfoAddr` is the store the narinfos are published to. */
export function openStaging(pathInfoAddr: string, dir?: string): NarStaging {
  if (dir !== undefined) return new DiskStaging(dir);
  const a = parseAddr(pathInfoAddr);
  if (a.kind === 'memory') return new MemoryStaging();
  if (a.kind === 'file') return new DiskStaging(join(a.root, 'staged-nars'));
  if (a.kind === 's3') return new PgStaging(a.indexUrl);
  if (a.kind === 'postgres') return new PgStaging(a.url);
  return new DiskStaging(defaultStagingDir());
}
