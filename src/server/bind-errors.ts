// Why a listener could not be opened, in the operator's terms. grpc-js
// folds the socket's error into "No address added … errors: [listen
// EADDRINUSE: …]" and also logs that line itself; the daemon says it once
// (grpc-log.ts). No imports: the HTTP listener uses this too.

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
