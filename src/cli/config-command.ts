import { parse, type Command } from '../util/usage.js';
import { defaultDataDir, effectiveConfig, hookStore, spoolDir } from '../addr/config.js';

const HELP = `Usage: nix-castore config [--store ADDR]

Prints the effective configuration as JSON, with where each value came from
(flag, environment variable, config file, or default). Config files are
found from the current directory upwards: a "nix-castore" key in
package.json, .nix-castorerc(.json|.yaml|.yml|.js|.cjs|.mjs) or
nix-castore.config.(js|cjs|mjs); keys: store, blobServiceAddr,
directoryServiceAddr, pathInfoServiceAddr, jobs, sizeFormula, signKeyFile,
and the daemon's maxBufferedBytes, maxConcurrentStreams, streamStallTimeout,
httpWriteBuffer (see 'nix-castore daemon --help').

Also shown: "hook", where the post-build hook and 'drain' push (the store
above unless NIX_CASTORE_STORE says otherwise) and their queue; "daemon",
its default --data directory and the limits above as a daemon started here
would take them (bytes, streams, seconds), and "problems" if it would
refuse one.`;

export const configCommand: Command = {
  name: 'config',
  summary: 'print the effective configuration and where each value comes from',
  help: HELP,
  async run(argv) {
    const { values } = parse(argv, { store: { type: 'string' } });
    const env = process.env;
    const base = await effectiveConfig({ store: values.store });
    const hook = values.store ?? hookStore(env);
    const problems: string[] = [];
    // Loaded here: the daemon's limits bring the server's modules, which every other command does without.
    const { streamLimits } = await import('./daemon-limits.js');
    const { limits, sources } = await streamLimits({}, problems);
    const out = {
      ...base,
      hook: {
        store: hook ?? base.blobServiceAddr,
        spool: spoolDir(env),
        sources: {
          store: values.store ? '--store' : hook ? 'NIX_CASTORE_STORE' : `as blobServiceAddr (${base.sources.blobServiceAddr})`,
          spool: env.NIX_CASTORE_SPOOL ? 'NIX_CASTORE_SPOOL' : 'default',
        },
      },
      daemon: {
        data: defaultDataDir(env),
        maxBufferedBytes: limits.maxBufferedBytes,
        maxConcurrentStreams: limits.maxStreams,
        streamStallTimeout: limits.streamStallMs / 1000,
        httpWriteBuffer: limits.httpWriteBufferBytes,
        sources: { data: env.XDG_DATA_HOME ? 'XDG_DATA_HOME' : 'default', ...sources },
        // A daemon started here would refuse these (the values above are then the defaults).
        ...(problems.length > 0 ? { problems } : {}),
      },
    };
    console.log(JSON.stringify(out, null, 2));
    for (const p of problems) console.error(`nix-castore config: a daemon started here would refuse this: ${p}`);
    return 0;
  },
};
