// Runs a command and returns its standard output: what a copy needs to ask
// the local Nix about store paths. node:child_process directly: execa took
// ~130 ms to load, a fifth of a whole `copy` of paths already stored.
import { spawn } from 'node:child_process';

/** Why the command did not give its output. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    message: string,
    /** 'ENOENT': not on PATH; 'spawn': not started for another reason; 'failed': it ran and failed; 'too-large': past maxStdout. */
    readonly reason: 'ENOENT' | 'failed' | 'too-large' | 'spawn',
    /** What it printed on standard error (its last 64 KiB), trimmed. */
    readonly stderr = '',
  ) {
    super(message);
  }
}

export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  /** Standard output beyond this many bytes stops the command (default 512 MiB). */
  maxStdout?: number;
}

const MAX_STDOUT = 512 << 20;
const STDERR_KEPT = 64 << 10;

/** `cmd args…`'s standard output (UTF-8) once it exits 0; a CommandError otherwise. */
export function commandOutput(cmd: string, args: string[], opts: CommandOptions = {}): Promise<string> {
  const maxStdout = opts.maxStdout ?? MAX_STDOUT;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: CommandError | undefined, out?: string): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(out!);
    };
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > maxStdout) {
        child.kill('SIGKILL');
        return settle(new CommandError(`${cmd} printed more than ${maxStdout} bytes`, 'too-large'));
      }
      out.push(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      stderr = (stderr + s).slice(-STDERR_KEPT);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') settle(new CommandError(`${cmd}: not found`, 'ENOENT'));
      else settle(new CommandError(`${cmd}: ${err.message}`, 'spawn'));
    });
    child.on('close', (code, signal) => {
      if (code === 0) return settle(undefined, Buffer.concat(out).toString('utf8'));
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const said = stderr.trim();
      settle(new CommandError(said || `${cmd} ${how}`, 'failed', said));
    });
  });
}
