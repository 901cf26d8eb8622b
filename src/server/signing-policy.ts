// "Signing implies authenticated writes": a daemon that signs narinfos must
// not take writes from whoever merely reaches it, or anyone on the machine
// could get their own bytes signed under any store path name.
import type { ListenAddr } from './listen.js';

/** The loudly named opt-out, for operators who really want an open signing daemon. */
export const OPEN_SIGNING_FLAG = '--dangerously-sign-unauthenticated-writes';

export interface SigningPolicyInput {
  signs: boolean;
  readOnly: boolean;
  authToken: boolean;
  listen: ListenAddr[];
  /** Mode of the unix sockets (the operator's choice of who may connect). */
  socketMode: number;
  /** OPEN_SIGNING_FLAG was given. */
  openSigning: boolean;
}

/** Why this configuration must not start, with what to add; undefined when it is safe. */
export function signingPolicyProblem(p: SigningPolicyInput): string | undefined {
  if (!p.signs || p.readOnly || p.authToken || p.openSigning) return undefined;
  const tcp = p.listen.filter((l) => l.kind === 'tcp');
  const worldWritable = (p.socketMode & 0o002) !== 0;
  if (tcp.length === 0 && !worldWritable) return undefined;
  const where = tcp.length
    ? `it listens on TCP (${tcp.map((l) => (l.kind === 'tcp' ? `${l.host}:${l.port}` : '')).join(', ')}), where any local user can connect`
    : `its unix sockets are writable by every user (--socket-mode ${p.socketMode.toString(8)})`;
  return (
    `--sign-key-file signs whatever is written into the store, and ${where} and write without credentials. ` +
    `Add --auth-token-file FILE (writes need the token), or --read-only, or listen for writes only on ` +
    `unix sockets (--listen unix:/path, --socket-mode 660 or stricter, group chosen by you); ` +
    `or, if every user who can connect may publish signed paths, ${OPEN_SIGNING_FLAG}`
  );
}
