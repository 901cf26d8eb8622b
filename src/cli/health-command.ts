import { parse, UsageError, type Command } from '../util/usage.js';
import { parseGrpcAddr } from '../grpc/address.js';
import { checkHealth } from '../grpc/health-client.js';

const HELP = `Usage: nix-castore health [--wait SECONDS] ADDR

Asks the daemon at ADDR (grpc+unix:///abs/socket or grpc+http://host:port)
for its grpc.health.v1 status. Exits 0 when it answers SERVING, 1 otherwise.
With --wait, keeps asking until it does or the time is up — for scripts
(and Nix builds) that start a daemon and must wait for it.

Options:
      --wait S   keep asking for up to S seconds
  -h, --help     show this help

Exit status: 0 SERVING, 1 not serving or unreachable, 2 bad usage.`;

export const healthCommand: Command = {
  name: 'health',
  summary: "check (or wait for) a daemon's health",
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(argv, { wait: { type: 'string' } }, true);
    if (positionals.length !== 1) throw new UsageError('give exactly one daemon address, e.g. grpc+unix:///run/nix-castore.sock');
    const target = parseGrpcAddr(positionals[0]);
    const wait = values.wait === undefined ? 0 : Number(values.wait);
    if (!Number.isFinite(wait) || wait < 0) throw new UsageError(`--wait takes seconds, got ${JSON.stringify(values.wait)}`);
    const deadline = Date.now() + wait * 1000;
    let last = '';
    for (;;) {
      last = await checkHealth(target.target, target.tls);
      if (last === 'SERVING') {
        console.error(`nix-castore: ${positionals[0]} is SERVING`);
        return 0;
      }
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    console.error(`nix-castore: ${positionals[0]} is not serving (${last})`);
    return 1;
  },
};
