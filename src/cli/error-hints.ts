// What to do about the errors a user meets first with a store behind a
// daemon: none running where the address points, or one that wants the
// write token. The service's own message says what happened; this says
// what to change.
import { CastoreError } from '../castore/errors.js';

/** What a scale-out store says when PostgreSQL or S3 is out of reach (pg-index.ts, s3-objects.ts, probe.ts). */
const BACKEND_DOWN = /PostgreSQL at \S+|cannot reach s3:\/\/|S3 bucket \S+/;

/** The message of `err`, with a hint for the two errors above. */
export function withHint(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof CastoreError)) return message;
  if (err.kind === 'unauthenticated') {
    return `${message}\n  (the daemon wants its write token: set NIX_CASTORE_AUTH_TOKEN_FILE to a file holding it, the daemon's --auth-token-file)`;
  }
  // Not when a daemon answered that its own backend is out of reach: it is running.
  if (err.kind === 'unavailable' && /\b(ECONNREFUSED|ENOENT|EACCES|ECONNRESET|EHOSTUNREACH|ETIMEDOUT)\b|no answer/.test(message) && !BACKEND_DOWN.test(message)) {
    return `${message}\n  (is a daemon running there? Start one with 'nix-castore daemon', or say which store with --store, NIX_CASTORE_STORE or the config file: 'nix-castore config' shows what is used)`;
  }
  return message;
}
