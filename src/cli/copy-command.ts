import { readFile } from 'node:fs/promises';
import { accessSync, constants, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { STORE_DIR, parseBasename } from '../nix/store-path.js';
import { nixPathInfoJson } from '../upload/nix-cli.js';
import { parse, UsageError, type Command } from '../util/usage.js';
import { effectiveConfig } from '../addr/config.js';
import { positiveIntFlag } from '../util/usage.js';
import { progressReporter } from './progress.js';
import { parseAddr } from '../addr/parse.js';
import { ClosureError, type Closure } from '../closure/closure.js';
import { parseAttrsJson, findAttrsJson } from '../closure/structured-attrs.js';
import { parseLegacyClosure } from '../closure/legacy.js';
import { parsePathInfoJson } from '../closure/path-info-json.js';
import { openConfiguredStore, readSigningKey, runCopy } from './copy-run.js';
import { buildManifest, writeManifest } from '../upload/manifest.js';
import { COPY_RETRY } from '../upload/retry.js';

const HELP = `Usage: nix-castore copy [options] [STOREPATH...]

Uploads every path of a Nix closure into a castore: file contents as BLAKE3
blobs (only those the store lacks), directories, and one PathInfo per store
path — each verified against Nix's NAR hash, and published only after the
PathInfos of its references. Re-running uploads only what is missing.
Against nix-castore's daemon, a large file it lacks goes as the bytes that
differ from a similar blob it has (an earlier build's), when there is one;
a daemon on this machine (grpc+unix://) reads a large file of the Nix store
itself, and checks it, instead of receiving its bytes.

Where the closure comes from (one of):
  STOREPATH...              these paths and their closures ('nix path-info
                            --json --recursive' is run for the metadata)
      --attrs FILE          a structured-attrs .attrs.json
                            (default: $NIX_ATTRS_JSON_FILE, else
                            $NIX_BUILD_TOP/.attrs.json, when inside a build)
      --key NAME            the exportReferencesGraph key in it (default: closure)
      --closure-file FILE   the legacy exportReferencesGraph text file (no
                            hashes: they are computed while uploading)
      --path-info FILE|-    saved 'nix path-info --json --recursive' output

Options:
      --store ADDR          all three services at ADDR (otherwise
                            BLOB_SERVICE_ADDR, DIRECTORY_SERVICE_ADDR,
                            PATH_INFO_SERVICE_ADDR, the config file, then
                            grpc+http://[::1]:8000). Also memory://,
                            file:///abs/dir (no daemon), grpc+unix:///socket.
  -j, --jobs N              store paths ingested at once (default 4)
      --sign-key-file FILE  sign each PathInfo with this Nix secret key
                            (name:base64, from 'nix key generate-secret'),
                            also those already in the store unsigned by it
      --size-formula F      DirectoryNode.size formula: auto (probe the
                            daemon; default), head (2n+S), legacy (n+S)
      --json                print a JSON summary on stdout
      --manifest FILE       when every path is in the store, write a JSON
                            manifest (paths, NAR hashes, castore roots)
  -q, --quiet               no progress output
  -h, --help                show this help

A daemon started with --auth-token-file takes writes only with its token:
set NIX_CASTORE_AUTH_TOKEN_FILE to a file holding it.

Exit status: 0 all paths done, 1 some paths failed (listed), 2 bad input or
usage (nothing uploaded).`;

export const copyCommand: Command = {
  name: 'copy',
  summary: 'upload a Nix closure (verified, in dependency order, resumable)',
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse(
      argv,
      {
        store: { type: 'string' },
        attrs: { type: 'string' },
        key: { type: 'string' },
        'closure-file': { type: 'string' },
        'path-info': { type: 'string' },
        'sign-key-file': { type: 'string' },
        jobs: { type: 'string', short: 'j' },
        'size-formula': { type: 'string' },
        json: { type: 'boolean' },
        manifest: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
      },
      true,
    );
    const sizeFormula = values['size-formula'];
    if (sizeFormula !== undefined && !['auto', 'head', 'legacy'].includes(sizeFormula)) {
      throw new UsageError(`--size-formula takes auto, head or legacy, got ${JSON.stringify(sizeFormula)}`);
    }
    const config = await effectiveConfig({
      store: values.store,
      jobs: values.jobs === undefined ? undefined : positiveIntFlag(values.jobs, '--jobs', 4),
      sizeFormula: sizeFormula as 'auto' | 'head' | 'legacy' | undefined,
      signKeyFile: values['sign-key-file'],
    });
    for (const a of [config.blobServiceAddr, config.directoryServiceAddr, config.pathInfoServiceAddr]) parseAddr(a);

    // Everything is read and checked before anything is uploaded.
    const closure = await readClosure(values, positionals);
    const key = config.signKeyFile ? await readSigningKey(config.signKeyFile) : undefined;

    // Before anything is uploaded: a manifest that cannot be written fails the run at its very end otherwise.
    if (values.manifest) {
      try {
        accessSync(dirname(resolve(values.manifest)), constants.W_OK);
      } catch (err) {
        throw new UsageError(`--manifest ${values.manifest}: cannot write there (${(err as Error).message})`);
      }
    }
    const store = openConfiguredStore(config);
    const progress = progressReporter(process.stderr, values.quiet === true || values.json === true);
    try {
      const report = await runCopy(config, store, closure, { signingKey: key, events: progress, retry: COPY_RETRY });
      progress.finish();
      if (values.json) console.log(JSON.stringify(report, null, 2));
      else if (!values.quiet) {
        console.error(
          `copy: ${report.uploaded.length} uploaded, ${report.skipped.length} already present${report.signed.length > 0 ? ` (${report.signed.length} of them signed now)` : ''}, ${report.failed.length} failed; ` +
            `${report.blobsSent} blobs sent (${report.bytesSent} bytes${report.blobsAsDeltas > 0 ? `; ${report.blobsAsDeltas} as deltas, ${report.bytesReused} bytes taken from blobs the store had` : ''}${report.blobsReadByStore > 0 ? `; ${report.blobsReadByStore} read from their files by the daemon, ${report.bytesReadByStore} bytes` : ''}), ${report.blobsSkipped} already stored, in ${report.seconds.toFixed(1)}s`,
        );
      }
      if (report.failed.length > 0) {
        if (values.quiet || values.json) for (const f of report.failed) console.error(`copy: FAILED ${f.path}: ${f.reason}`);
        return 1;
      }
      if (values.manifest) {
        try {
          await writeManifest(values.manifest, await buildManifest(store, closure));
        } catch (err) {
          throw new Error(`--manifest ${values.manifest}: ${(err as Error).message} (every path was copied)`);
        }
      }
      return 0;
    } finally {
      progress.finish();
      await store.close();
    }
  },
};

async function readText(file: string): Promise<string> {
  try {
    return file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

async function readClosure(
  values: { attrs?: string; key?: string; 'closure-file'?: string; 'path-info'?: string },
  paths: string[],
): Promise<Closure> {
  const given = [values.attrs && '--attrs', values['closure-file'] && '--closure-file', values['path-info'] && '--path-info', paths.length > 0 && 'store paths'].filter(Boolean);
  if (given.length > 1) throw new UsageError(`give only one closure source, not ${given.join(' and ')}`);
  if (values.key && (values['closure-file'] || values['path-info'] || paths.length > 0)) throw new UsageError(`--key applies to --attrs, not to ${given[0]}`);
  try {
    if (values['closure-file']) return parseLegacyClosure(await readText(values['closure-file']), { file: values['closure-file'] });
    if (values['path-info']) return parsePathInfoJson(await readText(values['path-info']), { file: values['path-info'] === '-' ? 'stdin' : values['path-info'] });
    if (paths.length > 0) return parsePathInfoJson(await nixPathInfoJson(paths.map(storePathArg)), { file: 'nix path-info' });
    const attrs = values.attrs ?? findAttrsJson(process.env);
    if (!attrs) {
      throw new UsageError('no closure given: pass store paths, --attrs FILE, --closure-file FILE or --path-info FILE (inside a structured-attrs build .attrs.json is found by itself)');
    }
    return parseAttrsJson(await readText(attrs), { key: values.key, file: attrs });
  } catch (err) {
    if (err instanceof ClosureError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * A STOREPATH argument as Nix should be asked about it: a store path, a
 * path inside one, a link to one (./result) or a basename (expanded).
 * Anything else is refused here, before Nix reads it as a flake reference
 * or tries to substitute a path that is not on this machine.
 */
function storePathArg(arg: string): string {
  if (!arg.includes('/')) {
    try {
      parseBasename(arg);
    } catch (err) {
      throw new UsageError(`${JSON.stringify(arg)} is not a store path or the basename of one: ${(err as Error).message}`);
    }
    arg = `${STORE_DIR}/${arg}`;
  }
  let real: string;
  try {
    real = realpathSync(arg);
  } catch {
    throw new UsageError(`${arg} does not exist here: copy reads the files of store paths on this machine (build or fetch it first)`);
  }
  if (!real.startsWith(`${STORE_DIR}/`)) throw new UsageError(`${arg} is not in the Nix store (${STORE_DIR}): copy takes store paths, their basenames, or links to them such as ./result`);
  return arg;
}
