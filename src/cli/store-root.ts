// The on-disk store a maintenance command works on: --data DIR, --store
// file:///DIR, or the daemon's default data directory.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../util/usage.js';
import { parseAddr } from '../addr/parse.js';

export type MaintenanceTarget = { kind: 'file'; root: string } | { kind: 'daemon'; addr: string } | { kind: 's3'; addr: string };

/** Like diskStoreRoot, but a daemon's address (grpc+…) is taken too: its AdminService does the work. */
export async function maintenanceTarget(command: string, data: string | undefined, store: string | undefined): Promise<MaintenanceTarget> {
  if (store !== undefined && data === undefined) {
    let a;
    try {
      a = parseAddr(store);
    } catch (err) {
      throw new UsageError(`--store: ${(err as Error).message}`);
    }
    if (a.kind === 'grpc') return { kind: 'daemon', addr: store };
    if (a.kind === 's3' && (command === 'gc' || command === 'pin')) return { kind: 's3', addr: store };
  }
  return { kind: 'file', root: existingStoreDir(await diskStoreRoot(command, data, store), command) };
}

/**
 * `root`, if there is a directory there: a command that only reads or
 * maintains a store must not make an empty one where a path was mistyped
 * (an on-disk store lays itself out when first used).
 */
export function existingStoreDir(root: string, command: string): string {
  if (!existsSync(root)) throw new UsageError(`there is no store at ${root}: ${command} works on an existing one (check the path; 'copy' and 'daemon' create a store)`);
  return root;
}

export async function diskStoreRoot(command: string, data: string | undefined, store: string | undefined): Promise<string> {
  if (data !== undefined && store !== undefined) throw new UsageError('give either --data or --store, not both');
  if (data !== undefined) return resolve(data);
  if (store !== undefined) {
    let a;
    try {
      a = parseAddr(store);
    } catch (err) {
      throw new UsageError(`--store: ${(err as Error).message}`);
    }
    if (a.kind === 'file') return a.root;
    throw new UsageError(`${command} works on an on-disk store (--store file:///DIR or --data DIR), a daemon's (grpc+unix:///… or grpc+http://…) or a scale-out one (s3://…); ${store} is none of these`);
  }
  return (await import('./daemon-command.js')).defaultDataDir();
}
