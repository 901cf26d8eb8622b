// What every gRPC client of ours shares, grpc-js's (channel.ts) and the
// lean HTTP/2 one (h2/): the message size limit and the bearer token. Kept
// apart from channel.ts so that the lean client does not load grpc-js.
import { readFileSync } from 'node:fs';
import { invalid } from '../castore/errors.js';

export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * While calls are in flight a client PINGs the server this often, and
 * gives up on a connection that does not answer (h2/connection.ts,
 * channel.ts). NIX_CASTORE_PING_MS sets it (tests).
 */
export const PING_MS = Number(process.env.NIX_CASTORE_PING_MS) || 20_000;

/** Names a file holding the bearer token every call carries (daemon --auth-token-file). */
export const AUTH_TOKEN_FILE_ENV = 'NIX_CASTORE_AUTH_TOKEN_FILE';

const tokens = new Map<string, string>();

/** The token from $NIX_CASTORE_AUTH_TOKEN_FILE (each file read once), or undefined. */
export function clientAuthToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = env[AUTH_TOKEN_FILE_ENV];
  if (!file) return undefined;
  let token = tokens.get(file);
  if (token === undefined) {
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw invalid(`${AUTH_TOKEN_FILE_ENV}: cannot read ${file}: ${(err as Error).message}`);
    }
    if (!/^[\x21-\x7e]+$/.test(token)) throw invalid(`${AUTH_TOKEN_FILE_ENV}: ${file} must hold one token of printable ASCII`);
    tokens.set(file, token);
  }
  return token;
}
