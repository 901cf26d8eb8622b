// One stray promise must not take a daemon that serves many clients down:
// an unhandled rejection is a bug in one request's work, which has already
// failed for that client, so it is logged loudly and serving goes on.
// (Uncaught exceptions keep Node's default: the process state is unknown.)
let installed = false;

export function keepServingOnUnhandledRejection(log: (line: string) => void = (l) => process.stderr.write(l + '\n')): void {
  if (installed) return;
  installed = true;
  process.on('unhandledRejection', (reason) => {
    const text = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);
    log(`nix-castore daemon: BUG: unhandled rejection (still serving; please report): ${text}`);
  });
}
