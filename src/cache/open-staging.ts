// Where a daemon keeps staged NARs (staging.ts) and realisations
// (realisations.ts): beside the on-disk store's data, in the scale-out
// store's PostgreSQL (shared by all its daemons), in memory for a memory
// store, else in a local state directory (`--upload-staging DIR` overrides
// all of these).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseAddr } from '../addr/parse.js';
import { DiskStaging, MemoryStaging, type NarStaging } from './staging.js';
import { PgStaging } from './pg-staging.js';
import { DiskRealisations, MemoryRealisations, type RealisationStore } from './realisations.js';
import { PgRealisations } from './pg-realisations.js';

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

/** Beside the staged NARs: `realisations/` in the store's directory or in the staging directory, or their database. */
export function openRealisations(pathInfoAddr: string, stagingDir?: string): RealisationStore {
  if (stagingDir !== undefined) return new DiskRealisations(join(stagingDir, 'realisations'));
  const a = parseAddr(pathInfoAddr);
  if (a.kind === 'memory') return new MemoryRealisations();
  if (a.kind === 'file') return new DiskRealisations(join(a.root, 'realisations'));
  if (a.kind === 's3') return new PgRealisations(a.indexUrl);
  if (a.kind === 'postgres') return new PgRealisations(a.url);
  return new DiskRealisations(join(defaultStagingDir(), 'realisations'));
}
