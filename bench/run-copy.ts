// One `nix-castore copy --json` run as the benchmarks start it: with the
// CLI's own node flags, timed, its JSON report parsed.
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, CLI_NODE_FLAGS } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';

/** What `copy --json` reports (the fields the benchmarks read). */
export interface CopyJson {
  bytesRead: number;
  bytesSent: number;
  blobsSent: number;
  /** Of blobsSent, those sent as deltas against blobs the store had, and the bytes taken from those. */
  blobsAsDeltas: number;
  bytesReused: number;
  /** Of blobsSent, those a daemon on this machine read from their files itself, and their bytes. */
  blobsReadByStore: number;
  bytesReadByStore: number;
  peakRssMiB: number;
  cpuSeconds: { user: number; system: number };
}

export interface CopyRunOptions {
  env?: NodeJS.ProcessEnv;
  /** Node flags before the CLI's own (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Sees the process as soon as it is spawned (e.g. to sample its threads). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs `copy --json ARGS`; rejects with its stderr if it fails. */
export function runCopyJson(args: string[], opts: CopyRunOptions = {}): Promise<{ seconds: number; report: CopyJson }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [...CLI_NODE_FLAGS, ...(opts.nodeArgs ?? []), CLI, 'copy', '--json', ...args], {
      env: opts.env ?? nixEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    opts.onSpawn?.(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`copy ${args.join(' ')} exited ${code}: ${err}`));
      resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, report: JSON.parse(out) as CopyJson });
    });
  });
}
