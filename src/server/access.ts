// Who may write: `--read-only` refuses every write RPC with PERMISSION_DENIED,
// `--auth-token-file` makes every write RPC carry `authorization: Bearer
// <token>` (else UNAUTHENTICATED). Reads stay open over gRPC; the HTTP
// binary cache asks for the token on every request (http-cache.ts).
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { status, type Metadata, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { StatusObject } from '../grpc/status.js';

export interface AccessPolicy {
  /** Refuse every write RPC (PERMISSION_DENIED). */
  readOnly?: boolean;
  /** Writes (and HTTP cache requests) must present this bearer token. */
  authToken?: string;
}

/** The write RPC of each tvix service: the only one that changes the store. */
export const WRITE_METHODS = { blob: 'Put', directory: 'Put', pathInfo: 'Put' } as const;

/** Token text: one line of visible ASCII (what HTTP and gRPC headers can carry). */
const TOKEN_RE = /^[\x21-\x7e]+$/;

/** Reads a token file: its content without surrounding whitespace. */
export async function readTokenFile(file: string): Promise<string> {
  const token = (await readFile(file, 'utf8')).trim();
  if (!token) throw new Error(`${file} is empty`);
  if (!TOKEN_RE.test(token)) throw new Error(`${file}: the token must be one line of printable ASCII without spaces`);
  return token;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Compares in constant time (over SHA-256 digests, so the length leaks nothing either). */
export function sameToken(given: string, token: string): boolean {
  return timingSafeEqual(sha256(given), sha256(token));
}

/**
 * Whether an `Authorization` header value carries `token`: `Bearer <token>`,
 * or HTTP Basic auth with `<token>` as the password (any user name), which
 * is what Nix sends for a netrc entry.
 */
export function authorizes(header: string | undefined, token: string, allowBasic = false): boolean {
  if (header === undefined) return false;
  const m = /^(\S+) +(\S+)$/.exec(header.trim());
  if (!m) return false;
  const scheme = m[1].toLowerCase();
  if (scheme === 'bearer') return sameToken(m[2], token);
  if (scheme === 'basic' && allowBasic) {
    const decoded = Buffer.from(m[2], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 && sameToken(decoded.slice(colon + 1), token);
  }
  return false;
}

/** Why a write with this metadata is refused, if it is. */
export function writeRefusal(policy: AccessPolicy, metadata: Metadata): StatusObject | undefined {
  const values = metadata.get('authorization');
  return writeRefusalFor(policy, values.length === 1 && typeof values[0] === 'string' ? values[0] : undefined);
}

/** Why a write with this `authorization` header is refused, if it is. */
export function writeRefusalFor(policy: AccessPolicy, header: string | undefined): StatusObject | undefined {
  if (policy.authToken !== undefined) {
    if (!authorizes(header, policy.authToken)) {
      return {
        code: status.UNAUTHENTICATED,
        details: header === undefined ? 'writes need an authorization: Bearer <token> header' : 'invalid bearer token',
      };
    }
  }
  if (policy.readOnly) return { code: status.PERMISSION_DENIED, details: 'the daemon is read-only' };
  return undefined;
}

type AnyCall = { metadata: Metadata; emit?: (event: string, ...args: unknown[]) => boolean };
type AnyHandler = (call: AnyCall, cb?: (err: StatusObject | null) => void) => void;

/**
 * `impl` with method `name` (a write of any shape) refused according to
 * `policy` before the handler runs, so nothing is read or stored.
 */
export function guardWrite(impl: UntypedServiceImplementation, name: string, policy: AccessPolicy): UntypedServiceImplementation {
  if (!policy.readOnly && policy.authToken === undefined) return impl;
  const handler = impl[name] as unknown as AnyHandler;
  const guarded: AnyHandler = (call, cb) => {
    const refusal = writeRefusal(policy, call.metadata);
    // Server-streaming handlers get no callback: their status is an 'error' event.
    if (refusal) return cb ? cb(refusal) : void call.emit!('error', refusal);
    handler(call, cb);
  };
  return { ...impl, [name]: guarded as unknown as UntypedServiceImplementation[string] };
}
