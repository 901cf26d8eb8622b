// Starts the real `nix-castore daemon` (the compiled CLI) as a child process
// on a unix socket in a temp dir, and waits until its health check answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkHealth } from '../../src/grpc/health-client.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * Node's flags from the CLI's `#!/usr/bin/env -S node …` line: what
 * `nix-castore` runs with. Children started as `node CLI` take them too,
 * so tests and benchmarks measure what users run.
 */
export const CLI_NODE_FLAGS: string[] = (() => {
  const first = readFileSync(CLI, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node( .*)?$/.exec(first);
  return m?.[1]?.trim().split(/\s+/) ?? [];
})();

export interface DaemonProcess {
  child: ChildProcess;
  /** grpc+unix:///… address of the daemon. */
  addr: string;
  socket: string;
  dataDir: string;
  tmp: string;
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function waitForSocket(socket: string, child: ChildProcess, log: () => string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}:\n${log()}`);
    if (await healthy(`unix://${socket}`)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`daemon did not become healthy within ${timeoutMs} ms:\n${log()}`);
}

async function healthy(target: string): Promise<boolean> {
  return (await checkHealth(target, false, 1000)) === 'SERVING';
}

/** `args` replace the default `--data DIR`; `extraArgs` come after it. */
export async function startDaemonProcess(opts: { args?: string[]; extraArgs?: string[]; dataDir?: string; env?: NodeJS.ProcessEnv; nodeArgs?: string[]; cwd?: string } = {}): Promise<DaemonProcess> {
  const tmp = await mkdtemp(join(tmpdir(), 'castore-daemon-'));
  const socket = join(tmp, 'daemon.sock');
  const dataDir = opts.dataDir ?? join(tmp, 'data');
  const args = [...CLI_NODE_FLAGS, ...(opts.nodeArgs ?? []), CLI, 'daemon', '--listen', `unix:${socket}`, ...(opts.args ?? ['--data', dataDir]), ...(opts.extraArgs ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  await waitForSocket(socket, child, () => log);
  return {
    child,
    addr: `grpc+unix://${socket}`,
    socket,
    dataDir,
    tmp,
    stderr: () => log,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
        child.kill(signal);
        await exited;
      }
      await rm(tmp, { recursive: true, force: true });
      // The daemon logs an unhandled rejection and keeps serving (process-guard.ts):
      // every test that starts one fails if one escaped, not only the tests aimed at it.
      const escaped = /nix-castore daemon: BUG: unhandled rejection[^\n]*(\n\s+at [^\n]*)*/.exec(log);
      if (escaped) throw new Error(`the daemon logged an unhandled rejection during this test:\n${escaped[0]}`);
      return child.exitCode;
    },
  };
}
