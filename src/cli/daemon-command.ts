import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse, UsageError, type Command } from './usage.js';
import { openStore, addrsFromEnv, sameAddr } from '../store/from-addr.js';
import { fileAddr, parseAddr } from '../castore/from-addr.js';
import { startDaemon } from '../server/daemon.js';
import { DEFAULT_LISTEN, parseListenAddr, clientAddr, type ListenAddr } from '../server/listen.js';

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'nix-castore');
}

const HELP = `Usage: nix-castore daemon [--listen ADDR]... [--data DIR | --store ADDR]

Serves a store over gRPC: tvix.castore.v1 BlobService and DirectoryService,
tvix.store.v1 PathInfoService (also as snix.*), gRPC server reflection (v1 and
v1alpha) and grpc.health.v1.Health.

Options:
  -l, --listen ADDR        host:port, [v6]:port or unix:/abs/path; repeatable.
                           Default ${DEFAULT_LISTEN}: loopback only, so nothing
                           is reachable from other machines unless you say so.
      --data DIR           the embedded on-disk store (file://DIR).
                           Default $XDG_DATA_HOME/nix-castore
                           (~/.local/share/nix-castore).
      --store ADDR         serve another backend instead: memory://,
                           file:///abs/dir (BLOB_SERVICE_ADDR,
                           DIRECTORY_SERVICE_ADDR, PATH_INFO_SERVICE_ADDR
                           set one service each, as for tvix-store).
      --max-message-size N largest accepted gRPC message in bytes (default 4194304).
      --socket-mode MODE   octal mode of unix sockets (default 660).
  -h, --help               show this help.

Clients reach it as grpc+http://[::1]:8000 or grpc+unix:///abs/path.
Stops cleanly on SIGINT or SIGTERM.`;

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'serve the store over gRPC (tvix-store compatible)',
  help: HELP,
  async run(argv) {
    const { values } = parse(argv, {
      listen: { type: 'string', short: 'l', multiple: true },
      data: { type: 'string' },
      store: { type: 'string' },
      'max-message-size': { type: 'string' },
      'socket-mode': { type: 'string' },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (values.data && values.store) throw new UsageError('give either --data or --store, not both');
    const listen = (values.listen?.length ? values.listen : [DEFAULT_LISTEN]).map(parseListenAddr);
    const base = values.store ?? fileAddr(values.data ?? defaultDataDir());
    const addrs = values.store ? sameAddr(base) : addrsFromEnv(sameAddr(base));
    for (const a of Object.values(addrs)) {
      parseAddr(a);
      if (servesItself(a, listen)) throw new UsageError(`the daemon would forward to itself: ${a} is one of its own listen addresses`);
    }
    const maxMessageBytes = positiveInt(values['max-message-size'], '--max-message-size', 4 * 1024 * 1024);
    const socketMode = values['socket-mode'] === undefined ? 0o660 : octal(values['socket-mode']);

    const store = openStore(addrs);
    const daemon = await startDaemon(store, { listen, maxMessageBytes, socketMode });
    const backend = addrs.blob === addrs.directory && addrs.blob === addrs.pathInfo ? addrs.blob : JSON.stringify(addrs);
    console.error(`nix-castore daemon: serving ${backend} on ${daemon.addrs.join(', ')}`);

    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        console.error(`nix-castore daemon: ${sig}, shutting down`);
        resolve();
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    await daemon.stop();
    await store.close();
    return 0;
  },
};

function servesItself(addr: string, listen: ListenAddr[]): boolean {
  return listen.some((l) => clientAddr(l) === addr);
}

export function positiveInt(v: string | undefined, flag: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${flag} takes a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

function octal(v: string): number {
  if (!/^[0-7]{3,4}$/.test(v)) throw new UsageError(`--socket-mode takes an octal mode like 660, got ${JSON.stringify(v)}`);
  return parseInt(v, 8);
}
