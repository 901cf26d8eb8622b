import { parse, type Command } from '../util/usage.js';
import { effectiveConfig } from '../addr/config.js';

const HELP = `Usage: nix-castore config [--store ADDR]

Prints the effective configuration as JSON, with where each value came from
(flag, environment variable, config file, or default). Config files are
found from the current directory upwards: a "nix-castore" key in
package.json, .nix-castorerc(.json|.yaml|.yml|.js|.cjs|.mjs) or
nix-castore.config.(js|cjs|mjs); keys: store, blobServiceAddr,
directoryServiceAddr, pathInfoServiceAddr, jobs, sizeFormula, signKeyFile,
and the daemon's maxBufferedBytes, maxConcurrentStreams, streamStallTimeout,
httpWriteBuffer (see 'nix-castore daemon --help').`;

export const configCommand: Command = {
  name: 'config',
  summary: 'print the effective configuration and where each value comes from',
  help: HELP,
  async run(argv) {
    const { values } = parse(argv, { store: { type: 'string' } });
    console.log(JSON.stringify(await effectiveConfig({ store: values.store }), null, 2));
    return 0;
  },
};
