// Whether a path (raw bytes: store paths need not be UTF-8) lies strictly
// below a directory, by whole components (`/nix/storex` is not below `/nix/store`).
export function isBelow(path: Uint8Array, dir: string): boolean {
  const prefix = Buffer.from(dir.endsWith('/') ? dir : dir + '/');
  return path.length > prefix.length && prefix.equals(path.subarray(0, prefix.length));
}
