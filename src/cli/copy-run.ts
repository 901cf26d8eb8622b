// Running a copy for the commands that upload (copy, hook, drain): open the
// configured store, pick the size formula, copy, close.
import { readFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import type { EffectiveConfig } from '../addr/config.js';
import { UsageError } from '../util/usage.js';
import { openStore, type Store } from '../addr/open.js';
import { parseAddr } from '../addr/parse.js';
import { probeScaleout } from '../scaleout/probe.js';
import type { Closure } from '../closure/closure.js';
import { parseSecretKey, type SecretKey } from '../nix/signature.js';
import { copyClosure, type CopyEvents, type CopyReport } from '../upload/copy.js';
import { detectSizeFormula } from '../upload/size-formula.js';
import type { SizeFormula } from '../castore/directory.js';
import { CastoreError } from '../castore/errors.js';
import { DEFAULT_RETRY, withRetry, type RetryPolicy } from '../upload/retry.js';

export function openConfiguredStore(config: EffectiveConfig): Store {
  for (const a of [config.blobServiceAddr, config.directoryServiceAddr, config.pathInfoServiceAddr]) parseAddr(a);
  return openStore({ blob: config.blobServiceAddr, directory: config.directoryServiceAddr, pathInfo: config.pathInfoServiceAddr });
}

export async function readSigningKey(file: string): Promise<SecretKey> {
  try {
    return parseSecretKey((await readFile(file, 'utf8')).trim());
  } catch (err) {
    throw new UsageError(`--sign-key-file ${file}: ${(err as Error).message}`);
  }
}

export async function sizeFormulaFor(config: EffectiveConfig, store: Store): Promise<SizeFormula> {
  if (config.sizeFormula !== 'auto') return config.sizeFormula;
  if (parseAddr(config.directoryServiceAddr).kind !== 'grpc') return 'head';
  try {
    return await detectSizeFormula(store.directories);
  } catch (err) {
    // The probe is the first call a copy makes: say which store it could not use, not which call.
    if (!(err instanceof CastoreError)) throw err;
    throw new CastoreError(err.kind, `the store at ${config.directoryServiceAddr}: ${err.message.replace(/^directory Put: /, '')}`, { cause: err });
  }
}

export async function runCopy(
  config: EffectiveConfig,
  store: Store,
  closure: Closure,
  opts: { signingKey?: SecretKey; events?: CopyEvents; retry?: RetryPolicy },
): Promise<CopyReport> {
  await probeScaleout([config.blobServiceAddr, config.directoryServiceAddr, config.pathInfoServiceAddr]);
  lessHeapGrowth();
  // The first call a copy makes: retried while the store is transiently
  // unavailable (a daemon's PostgreSQL or S3 restarting), as every later call is.
  const retry = opts.retry ?? DEFAULT_RETRY;
  const formula = await withRetry('probe', () => sizeFormulaFor(config, store), retry, opts.events?.log);
  return copyClosure({ store, closure, jobs: config.jobs, formula, signingKey: opts.signingKey, events: opts.events, retry });
}

/**
 * A copy's peak RSS was mostly V8's old generation, grown to ~3x what was
 * live before it collected. Since a copy allocates little per file
 * (ingest.ts), growing by at most 50% costs it no measurable CPU and takes
 * ~60 MiB off its peak. Only for copies: the daemon still allocates per
 * blob received, and the same flag cost it ~30% more CPU. The flag is
 * read whenever V8 sets the next limit, so setting it now takes effect.
 */
function lessHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=50');
}
