// nixpkgs' lib/ for the Nix tests (the real module system, real types): the
// snapshot vendored in shared/, which CI provides read-only beside the
// clone (<repo>/../shared). NIX_CASTORE_NIXPKGS_LIB names another copy
// (e.g. in a worktree whose parent has no shared/).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(new URL('../../../', import.meta.url)));

export function nixpkgsLibDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.NIX_CASTORE_NIXPKGS_LIB || join(REPO, '..', 'shared', 'vendor', 'nixpkgs-lib', 'lib');
  if (!existsSync(join(dir, 'default.nix'))) {
    throw new Error(
      `nixpkgs' lib is not at ${dir}: the Nix tests evaluate the module with the real lib.evalModules from the snapshot in ` +
        `shared/vendor/nixpkgs-lib/, expected beside the repository (${join(REPO, '..', 'shared')}). ` +
        'Put shared/ there, or set NIX_CASTORE_NIXPKGS_LIB to a nixpkgs lib/ directory.',
    );
  }
  return dir;
}
