// Why a listener could not be opened, in the operator's terms. grpc-js
// folds the socket's error into "No address added … errors: [listen
// EADDRINUSE: …]" and also logs that line itself; the daemon says it once.
import * as grpc from '@grpc/grpc-js';

const HINTS: [RegExp, string][] = [
  [/EADDRINUSE/, 'the address is already in use (another nix-castore daemon, or another program, listens there: stop it or choose another address)'],
  [/EADDRNOTAVAIL/, 'no network interface of this machine has that address'],
  [/EACCES|EPERM/, 'permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE; a unix socket needs a directory this user may write)'],
];

/** The reason a bind failed: a hint for the errors an operator can fix, else the system's message. */
export function bindFailure(message: string): string {
  const hint = HINTS.find(([re]) => re.test(message));
  const inner = /errors: \[(.*)\]$/s.exec(message)?.[1];
  return hint ? `${hint[1]}; ${inner ?? message}` : (inner ?? message);
}

let quiet = false;

/** grpc-js's own log lines, prefixed so they are seen as coming from it; its line about a failed bind is dropped (the daemon reports it). */
export function quietGrpcBindLog(): void {
  if (quiet) return;
  quiet = true;
  const show = (level: string) => (message?: unknown, ...rest: unknown[]) => {
    if (typeof message === 'string' && message.startsWith('No address added out of total')) return;
    console.error(`nix-castore: grpc-js ${level}: ${String(message)}`, ...rest);
  };
  grpc.setLogger({ error: show('error'), info: show('info'), debug: show('debug') } as unknown as Partial<Console>);
}
