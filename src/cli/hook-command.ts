// `nix-castore hook`, for `post-build-hook` in nix.conf. Queue mode only
// writes a spool entry (fast: nothing heavy is loaded); direct mode pushes
// the new outputs at once. Either way a store outage never fails a build
// unless --strict: the reason goes to stderr, which Nix shows.
import { parse, UsageError, type Command } from '../util/usage.js';
import { enqueue } from '../upload/spool.js';
import { hookStore, spoolDir } from '../addr/config.js';
import { withHint } from './error-hints.js';

const HELP = `Usage: nix-castore hook [--mode direct|queue] [--store ADDR] [--spool DIR] [--strict] [--timeout SECONDS]

Meant for nix.conf:   post-build-hook = /path/to/nix-castore-hook
(nix-castore-hook runs 'nix-castore hook'). Nix runs it after every build
with DRV_PATH and OUT_PATHS set (Nix 2.8 leaves OUT_PATHS empty; the outputs
are then looked up with nix-store -q --outputs).

Modes (--mode, else $NIX_CASTORE_HOOK_MODE, else direct):
  direct   copy the outputs and their closures to the store now, within
           --timeout seconds (default 60)
  queue    append them to a durable spool and return at once; 'nix-castore
           drain' or 'nix-castore daemon --drain-spool DIR' uploads them,
           retrying until they are stored

Options:
      --store ADDR    where to push (else $NIX_CASTORE_STORE, then the usual
                      BLOB_SERVICE_ADDR… / config file / grpc+http://[::1]:8000)
      --spool DIR     the queue (else $NIX_CASTORE_SPOOL, else
                      $XDG_STATE_HOME/nix-castore/spool)
      --strict        exit non-zero when the push fails (this fails the build!)
      --timeout S     direct mode time limit in seconds (default 60)
  -h, --help          show this help

A daemon started with --auth-token-file takes writes only with its token:
set NIX_CASTORE_AUTH_TOKEN_FILE to a file holding it.

Exit status: 0, also when the push failed (the reason is printed and the
build stands); with --strict 1 then; 2 bad usage.`;

export const hookCommand: Command = {
  name: 'hook',
  summary: 'post-build-hook: push new build outputs, or queue them',
  help: HELP,
  async run(argv) {
    const { values } = parse(argv, {
      mode: { type: 'string' },
      store: { type: 'string' },
      spool: { type: 'string' },
      strict: { type: 'boolean' },
      timeout: { type: 'string' },
    });
    const mode = values.mode ?? process.env.NIX_CASTORE_HOOK_MODE ?? 'direct';
    if (mode !== 'direct' && mode !== 'queue') throw new UsageError(`--mode takes direct or queue, got ${JSON.stringify(mode)}`);
    const drvPath = process.env.DRV_PATH || undefined;
    const outPaths = (process.env.OUT_PATHS ?? '').split(/\s+/).filter(Boolean);
    if (!drvPath && outPaths.length === 0) throw new UsageError('neither DRV_PATH nor OUT_PATHS is set; this command is run by Nix as post-build-hook');
    const seconds = values.timeout === undefined ? 60 : Number(values.timeout);
    if (!(seconds > 0)) throw new UsageError(`--timeout takes seconds, got ${JSON.stringify(values.timeout)}`);
    // From here on every failure is a failed push, not a usage error.
    try {
      if (mode === 'queue') {
        await enqueue(values.spool ?? spoolDir(), { drvPath, outPaths });
        return 0;
      }
      const { pushNow } = await import('./hook-direct.js');
      await pushNow({ drvPath, outPaths, store: values.store ?? hookStore(), timeoutMs: seconds * 1000 });
      return 0;
    } catch (err) {
      const what = mode === 'queue' ? 'not queued' : 'not pushed';
      console.error(`nix-castore hook: ${drvPath ?? outPaths.join(' ')} ${what}: ${withHint(err)}`);
      return values.strict ? 1 : 0;
    }
  },
};
