// grpc-js's own log lines, told apart from the daemon's.
import * as grpc from '@grpc/grpc-js';

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
