// Configuration: flags > environment > config file > defaults. The file is
// found by cosmiconfig (a "nix-castore" key in package.json, .nix-castorerc,
// .nix-castorerc.json/.yaml/.js, nix-castore.config.js/.mjs/.cjs) and
// checked with zod, so a typo is an error that names the file and the key.
//
// Every environment variable and default location that chooses a store is
// read here (the gRPC clients read NIX_CASTORE_AUTH_TOKEN_FILE themselves,
// see grpc/channel.ts): tvix-store's BLOB_SERVICE_ADDR,
// DIRECTORY_SERVICE_ADDR and PATH_INFO_SERVICE_ADDR, the hook's
// NIX_CASTORE_STORE and NIX_CASTORE_SPOOL, and the XDG base directories.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cosmiconfig } from 'cosmiconfig';
import { z } from 'zod';
import { UsageError } from '../util/usage.js';

export const DEFAULT_ADDR = 'grpc+http://[::1]:8000';

/** The variables tvix-store reads, one per service. */
export const SERVICE_ADDR_ENV = {
  blob: 'BLOB_SERVICE_ADDR',
  directory: 'DIRECTORY_SERVICE_ADDR',
  pathInfo: 'PATH_INFO_SERVICE_ADDR',
} as const;

/** The hook's and the drainer's store (over the usual configuration). */
export const hookStore = (env: NodeJS.ProcessEnv = process.env): string | undefined => env.NIX_CASTORE_STORE || undefined;

/** The hook's queue: $NIX_CASTORE_SPOOL, else $XDG_STATE_HOME/nix-castore/spool. */
export function spoolDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.NIX_CASTORE_SPOOL || join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'nix-castore', 'spool');
}

/** The daemon's default on-disk store: $XDG_DATA_HOME/nix-castore. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'nix-castore');
}

const limitValue = z.union([z.number().int().positive(), z.string().min(1)]).optional();

export const ConfigFileSchema = z
  .object({
    store: z.string().min(1).optional(),
    blobServiceAddr: z.string().min(1).optional(),
    directoryServiceAddr: z.string().min(1).optional(),
    pathInfoServiceAddr: z.string().min(1).optional(),
    jobs: z.number().int().min(1).max(256).optional(),
    sizeFormula: z.enum(['auto', 'head', 'legacy']).optional(),
    signKeyFile: z.string().min(1).optional(),
    // The daemon's limits (daemon --help): flags win, then NIX_CASTORE_<KEY> (see DAEMON_LIMIT_ENV).
    // A number, or text as the flag takes it ("512M"): the flag's parser checks either.
    maxBufferedBytes: limitValue,
    maxConcurrentStreams: limitValue,
    streamStallTimeout: limitValue,
    httpWriteBuffer: limitValue,
  })
  .strict();
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

export interface EffectiveConfig {
  blobServiceAddr: string;
  directoryServiceAddr: string;
  pathInfoServiceAddr: string;
  jobs: number;
  sizeFormula: 'auto' | 'head' | 'legacy';
  signKeyFile?: string;
  /** Where each value came from: flag, env, file path, or default. */
  sources: Record<string, string>;
  configFile?: string;
}

export interface Flags {
  store?: string;
  jobs?: number;
  sizeFormula?: 'auto' | 'head' | 'legacy';
  signKeyFile?: string;
}

export async function loadConfigFile(cwd = process.cwd()): Promise<{ config: ConfigFile; file?: string }> {
  let found;
  try {
    found = await cosmiconfig('nix-castore').search(cwd);
  } catch (err) {
    throw new UsageError(`cannot read the configuration file: ${(err as Error).message}`);
  }
  if (!found || found.isEmpty) return { config: {} };
  const parsed = ConfigFileSchema.safeParse(found.config);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new UsageError(`${found.filepath}: ${problems}`);
  }
  return { config: parsed.data, file: found.filepath };
}

export async function effectiveConfig(flags: Flags, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<EffectiveConfig> {
  const { config: file, file: filePath } = await loadConfigFile(cwd);
  const sources: Record<string, string> = {};
  const pick = <T>(key: string, ...candidates: [T | undefined, string][]): T | undefined => {
    for (const [v, src] of candidates) {
      if (v !== undefined && v !== '') {
        sources[key] = src;
        return v;
      }
    }
    return undefined;
  };
  const fileSrc = filePath ?? 'config file';
  const addr = (key: string, envName: string, fileKey: keyof ConfigFile): string =>
    pick<string>(
      key,
      [flags.store, '--store'],
      [env[envName], envName],
      [file[fileKey] as string | undefined, `${fileSrc} (${fileKey})`],
      [file.store, `${fileSrc} (store)`],
      [DEFAULT_ADDR, 'default'],
    )!;
  return {
    blobServiceAddr: addr('blobServiceAddr', SERVICE_ADDR_ENV.blob, 'blobServiceAddr'),
    directoryServiceAddr: addr('directoryServiceAddr', SERVICE_ADDR_ENV.directory, 'directoryServiceAddr'),
    pathInfoServiceAddr: addr('pathInfoServiceAddr', SERVICE_ADDR_ENV.pathInfo, 'pathInfoServiceAddr'),
    jobs: pick('jobs', [flags.jobs, '--jobs'], [file.jobs, fileSrc], [4, 'default'])!,
    sizeFormula: pick('sizeFormula', [flags.sizeFormula, '--size-formula'], [file.sizeFormula, fileSrc], ['auto' as const, 'default'])!,
    signKeyFile: pick('signKeyFile', [flags.signKeyFile, '--sign-key-file'], [file.signKeyFile, fileSrc]),
    sources,
    configFile: filePath,
  };
}

/** The daemon limits that a config file key or an environment variable may set too. */
export const DAEMON_LIMIT_ENV = {
  maxBufferedBytes: 'NIX_CASTORE_MAX_BUFFERED_BYTES',
  maxConcurrentStreams: 'NIX_CASTORE_MAX_CONCURRENT_STREAMS',
  streamStallTimeout: 'NIX_CASTORE_STREAM_STALL_TIMEOUT',
  httpWriteBuffer: 'NIX_CASTORE_HTTP_WRITE_BUFFER',
} as const;
export type DaemonLimitKey = keyof typeof DAEMON_LIMIT_ENV;

/** A daemon limit as given, and where: the flag, the environment variable, or the config file and key (for errors). */
export interface LimitSetting {
  value: string;
  source?: string;
}

/**
 * Each daemon limit: the flag's value, else its environment variable, else
 * the config file's key (as text, for the flag parser to check); absent:
 * the default. A flag's source is left unset (the parser names the flag).
 */
export async function daemonLimitSettings(
  flags: Partial<Record<DaemonLimitKey, string>>,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): Promise<Partial<Record<DaemonLimitKey, LimitSetting>>> {
  const keys = Object.keys(DAEMON_LIMIT_ENV) as DaemonLimitKey[];
  const needFile = keys.some((k) => flags[k] === undefined && !env[DAEMON_LIMIT_ENV[k]]);
  const { config: file, file: filePath } = needFile ? await loadConfigFile(cwd) : { config: {} as ConfigFile, file: undefined };
  const out: Partial<Record<DaemonLimitKey, LimitSetting>> = {};
  for (const k of keys) {
    const fromEnv = env[DAEMON_LIMIT_ENV[k]] || undefined;
    if (flags[k] !== undefined) out[k] = { value: flags[k] };
    else if (fromEnv !== undefined) out[k] = { value: fromEnv, source: DAEMON_LIMIT_ENV[k] };
    else if (file[k] !== undefined) out[k] = { value: String(file[k]), source: `${filePath ?? 'the config file'} (${k})` };
  }
  return out;
}
