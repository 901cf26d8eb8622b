// Asking the local Nix about store paths. Child nix processes get
// `post-build-hook =` so a hook that queries Nix can never recurse.
import { UsageError } from '../util/usage.js';
import { CommandError, commandOutput } from '../util/command-output.js';

function nixEnv(): NodeJS.ProcessEnv {
  return { ...process.env, NIX_CONFIG: `${process.env.NIX_CONFIG ?? ''}\npost-build-hook =` };
}

async function runNix(cmd: string, args: string[]): Promise<string> {
  try {
    return await commandOutput(cmd, args, { env: nixEnv() });
  } catch (err) {
    if (err instanceof CommandError && err.reason === 'ENOENT') throw new UsageError(`${cmd} is not on PATH; it is needed to look up store paths`);
    throw new UsageError(`${cmd} ${args.slice(0, 4).join(' ')} failed: ${(err as Error).message.trim()}`);
  }
}

/** `nix path-info --json --recursive` for the given paths (text, any Nix version's shape). */
export function nixPathInfoJson(paths: string[]): Promise<string> {
  return runNix('nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--json', '--recursive', ...paths]);
}

/** The output paths of a derivation (Nix 2.8 leaves OUT_PATHS empty in hooks). */
export async function derivationOutputs(drvPath: string): Promise<string[]> {
  return (await runNix('nix-store', ['-q', '--outputs', drvPath])).split('\n').filter(Boolean);
}
