// Asking the local Nix about store paths. Child nix processes get
// `post-build-hook =` so a hook that queries Nix can never recurse. execa
// is loaded when first needed: a copy of a closure file never runs Nix.
import { UsageError } from '../util/usage.js';

function nixEnv(): NodeJS.ProcessEnv {
  return { ...process.env, NIX_CONFIG: `${process.env.NIX_CONFIG ?? ''}\npost-build-hook =` };
}

async function runNix(cmd: string, args: string[]): Promise<string> {
  const { execa } = await import('execa');
  try {
    return (await execa(cmd, args, { env: nixEnv(), extendEnv: false })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; shortMessage?: string; message: string; code?: string };
    if (e.code === 'ENOENT') throw new UsageError(`${cmd} is not on PATH; it is needed to look up store paths`);
    throw new UsageError(`${cmd} ${args.slice(0, 4).join(' ')} failed: ${(e.stderr || e.shortMessage || e.message).trim()}`);
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
