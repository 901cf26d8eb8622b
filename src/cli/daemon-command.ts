import { setFlagsFromString } from 'node:v8';
import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { byteSizeFlag, parse, positiveIntFlag, UsageError, type Command } from '../util/usage.js';
import { defaultDataDir } from '../addr/config.js';
import { streamLimits } from './daemon-limits.js';
import { openStore, addrsFromEnv, sameAddr, withDeltas, type Store } from '../addr/open.js';
import { fileAddr, parseAddr } from '../addr/parse.js';
import { probeScaleout, redactAddr } from '../scaleout/probe.js';
import { startDaemon } from '../server/daemon.js';
import { nixStoreDir, resolveRoots } from '../server/from-path.js';
import { DEFAULT_LISTEN, parseListenAddr, clientAddr, type ListenAddr } from '../server/listen.js';
import { DEFAULT_PRIORITY, parseHttpAddr } from '../server/http-cache.js';
import { formatPublicKey, parseSecretKey, type SecretKey } from '../nix/signature.js';
import { readTokenFile } from '../server/access.js';
import { DEFAULT_STATS_INTERVAL_S, metricsAddr, prepareDataDirs, startDaemonMetrics, statsIntervalMs } from './daemon-ops.js';
import { gcStampFor } from './daemon-gc-stamp.js';
import { adminFor, recordReads, scheduleGc, DAEMON_GC_FLAGS, DAEMON_GC_HELP } from './daemon-gc.js';
import { CACHE_FLAGS, CACHE_HELP, cacheOptions } from './cache-flags.js';
import { OPEN_SIGNING_FLAG, signingPolicyProblem } from '../server/signing-policy.js';
import { keepServingOnUnhandledRejection } from '../server/process-guard.js';
import { DEFAULT_CONNECTION_LIMITS as LIMITS } from '../server/connection-limits.js';

export { defaultDataDir } from '../addr/config.js';

const HELP = `Usage: nix-castore daemon [--listen ADDR]... [--data DIR | --store ADDR]
                          [--http ADDR [--sign-key-file FILE] [--priority N]
                           [--compression zstd|xz|none] [--trusted-upload-keys KEY]]
                          [--read-only] [--auth-token-file FILE]
                          [--metrics ADDR] [--metrics-need-token] [--stats-interval S]

Serves a store over gRPC: tvix.castore.v1 BlobService and DirectoryService,
tvix.store.v1 PathInfoService (also as snix.*), nixcastore.v1.BlobBatchService
(many small blobs per call, used by 'nix-castore copy'),
nixcastore.v1.BlobDeltaService (a large blob sent as what differs from a
similar one the store has; not with --read-only), gRPC server reflection
(v1 and v1alpha) and grpc.health.v1.Health.

Options:
  -l, --listen ADDR        host:port, [v6]:port or unix:/abs/path; repeatable.
                           Default ${DEFAULT_LISTEN}: loopback only, so nothing
                           is reachable from other machines unless you say so.
      --data DIR           the embedded on-disk store (file://DIR).
                           Default $XDG_DATA_HOME/nix-castore
                           (~/.local/share/nix-castore).
      --store ADDR         serve another backend instead: memory://,
                           file:///abs/dir, or the scale-out store
                           s3://BUCKET/PREFIX?index=postgres://…
                           [&endpoint=URL][&region=R] (bytes in S3, the
                           rest in PostgreSQL; any number of daemons can
                           serve one; &compression=none|zstd&level=N: how
                           new blobs are stored; default zstd level 1 in
                           stores created with compression, none in older
                           ones). BLOB_SERVICE_ADDR,
                           DIRECTORY_SERVICE_ADDR, PATH_INFO_SERVICE_ADDR
                           set one service each, as for tvix-store.
      --max-message-size N largest accepted gRPC message in bytes (default 4M).
      --drain-spool DIR    upload what 'nix-castore hook --mode queue' queued in
                           DIR into this store, now and as new builds arrive
                           (failed entries are retried with backoff).
      --socket-mode MODE   octal mode of unix sockets (default 660).
      --local-files DIR    for clients on a unix socket, read a large file
                           below DIR (symlinks resolved) that anyone on this
                           machine may read instead of receiving its bytes
                           (nixcastore.v1.BlobFromPathService: 'copy' then
                           sends a path; every byte is still hashed and
                           checked here); repeatable. Default the Nix store
                           ($NIX_STORE_DIR or /nix/store); 'none': never.
      --max-connections N  connections per listener (gRPC and --http) served
                           at once; more are closed (default ${LIMITS.maxConnections}).
      --handshake-timeout S
                           close a connection that has not sent its HTTP/2
                           preface (or first HTTP request) within S seconds
                           (default ${LIMITS.handshakeMs / 1000}).
      --idle-timeout S     close a connection on which nothing moves either
                           way for S seconds, e.g. a client that stopped
                           reading a NAR (default ${LIMITS.idleMs / 1000}).
      --max-buffered-bytes N
                           bytes held in memory for clients at once, daemon-
                           wide: messages being received, unfinished Puts,
                           NAR responses (K/M/G suffixes; default ${LIMITS.maxBufferedBytes / 2 ** 20}M).
                           Beyond it a request gets RESOURCE_EXHAUSTED, or
                           HTTP 503 with Retry-After.
      --max-concurrent-streams N
                           gRPC streams per connection (HTTP/2
                           SETTINGS_MAX_CONCURRENT_STREAMS; default ${LIMITS.maxStreams}).
      --stream-stall-timeout S
                           reset a gRPC stream, or close an HTTP response,
                           that has waited S seconds for its client to send
                           or read (default ${LIMITS.streamStallMs / 1000}).
      --http-write-buffer N
                           bytes queued per HTTP response before waiting for
                           the client to read (default ${LIMITS.httpWriteBufferBytes / 1024}K).
                           These four may also be set with the environment
                           (NIX_CASTORE_MAX_BUFFERED_BYTES, …_MAX_CONCURRENT_STREAMS,
                           …_STREAM_STALL_TIMEOUT, …_HTTP_WRITE_BUFFER) or the
                           config file (maxBufferedBytes, maxConcurrentStreams,
                           streamStallTimeout, httpWriteBuffer).
  -h, --help               show this help.

Access (reads are always open over gRPC):
      --read-only          refuse every write (BlobService/Put,
                           BlobBatchService/Put, DirectoryService/Put,
                           PathInfoService/Put) with
                           PERMISSION_DENIED; reads work as usual.
      --auth-token-file FILE
                           writes must carry the metadata
                           'authorization: Bearer <token>', the token being
                           FILE's content (trimmed), else UNAUTHENTICATED;
                           with --http every binary-cache request needs
                           'Authorization: Bearer <token>' (or Basic auth
                           with the token as password), else 401. Clients
                           (copy, hook, drain) send it when
                           NIX_CASTORE_AUTH_TOKEN_FILE names the file.

Clients reach it as grpc+http://[::1]:8000 or grpc+unix:///abs/path.
Stops cleanly on SIGINT or SIGTERM.

Nix binary cache (off unless --http is given):
      --http ADDR          also serve the store over HTTP as a Nix binary
                           cache (nix-cache-info, <hash>.narinfo, nar/…;
                           NARs rendered from the castore), which also
                           takes uploads from 'nix copy --to' (below).
                           host:port or [v6]:port; a bare port means
                           127.0.0.1:port (loopback). Port 0 picks a free
                           port; the start-up line on stderr shows the URL.
      --sign-key-file FILE sign every narinfo on the fly with this Nix secret
                           key (name:base64, 'nix key generate-secret'),
                           next to the signatures stored with the path.
                           Only a NarHash/NarSize the daemon checked against
                           its own content is signed. Needs authenticated
                           writes: --auth-token-file, --read-only, or gRPC
                           only on unix sockets (mode 660 or stricter).
      ${OPEN_SIGNING_FLAG}
                           sign although anyone who can connect may write
                           (they can then publish signed paths).
      --priority N         Priority in nix-cache-info (default ${DEFAULT_PRIORITY};
                           Nix prefers lower numbers).
${CACHE_HELP}

Metrics (Prometheus text format, GET /metrics):
      --metrics ADDR       serve /metrics on a listener of its own (host:port,
                           [v6]:port, or a bare port meaning 127.0.0.1:port).
                           With --http, /metrics is also served there.
      --metrics-need-token /metrics needs the --auth-token-file token too
                           (by default it is readable without).
      --stats-interval S   recount the store for the store_* metrics every S
                           seconds in the background (default ${DEFAULT_STATS_INTERVAL_S}; 0: never).
${DAEMON_GC_HELP}

Use it from Nix with e.g.
  nix-store -r PATH --option substituters http://127.0.0.1:8080 \\
    --option trusted-public-keys 'NAME:PUBLICKEY'
and push with 'nix copy --to http://127.0.0.1:8080 PATH'. With
--auth-token-file both need the token in Nix's netrc-file (/etc/nix/netrc
by default): machine 127.0.0.1 login nix password TOKEN`;

/**
 * A daemon receives its clients' bytes in fresh socket buffers, ~30 MB of
 * them between two young collections. V8 frees dead ones on a helper
 * thread and, until it has, counts them as external memory allocated
 * since the last full collection, against the old generation's limit: a
 * small heap (15 MB live, a 32 MB limit) then started a full collection
 * every ~17 MB received, ~100 for 4 GiB of Blob Puts, in most daemons.
 * Freed during the young collection itself they are not counted (1 full
 * collection for the same 4 GiB). Read at every young collection, so
 * setting it now takes effect.
 */
function sweepNetworkBuffersAtOnce(): void {
  setFlagsFromString('--no-concurrent-array-buffer-sweeping');
}

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
      'local-files': { type: 'string', multiple: true },
      http: { type: 'string' },
      'sign-key-file': { type: 'string' },
      priority: { type: 'string' },
      'drain-spool': { type: 'string' },
      'read-only': { type: 'boolean' },
      'auth-token-file': { type: 'string' },
      metrics: { type: 'string' },
      'metrics-need-token': { type: 'boolean' },
      'stats-interval': { type: 'string' },
      ...DAEMON_GC_FLAGS,
      ...CACHE_FLAGS,
      'dangerously-sign-unauthenticated-writes': { type: 'boolean' },
      'max-connections': { type: 'string' },
      'handshake-timeout': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'max-buffered-bytes': { type: 'string' },
      'max-concurrent-streams': { type: 'string' },
      'stream-stall-timeout': { type: 'string' },
      'http-write-buffer': { type: 'string' },
    });
    if (values.data && values.store) throw new UsageError('give either --data or --store, not both');
    const listen = (values.listen?.length ? values.listen : [DEFAULT_LISTEN]).map(parseListenAddr);
    const base = values.store ?? fileAddr(values.data ?? defaultDataDir());
    const addrs = values.store ? sameAddr(base) : addrsFromEnv(sameAddr(base));
    for (const a of Object.values(addrs)) {
      parseAddr(a);
      if (servesItself(a, listen)) throw new UsageError(`the daemon would forward to itself: ${a} is one of its own listen addresses`);
    }
    const maxMessageBytes = byteSizeFlag(values['max-message-size'], '--max-message-size', 4 * 1024 * 1024);
    const socketMode = values['socket-mode'] === undefined ? 0o660 : octal(values['socket-mode']);
    let readOnly = values['read-only'] === true;
    const limits = {
      maxConnections: positiveIntFlag(values['max-connections'], '--max-connections', LIMITS.maxConnections),
      handshakeMs: positiveIntFlag(values['handshake-timeout'], '--handshake-timeout', LIMITS.handshakeMs / 1000) * 1000,
      idleMs: positiveIntFlag(values['idle-timeout'], '--idle-timeout', LIMITS.idleMs / 1000) * 1000,
      ...(await streamLimits(values)).limits,
    };
    if (readOnly && values['drain-spool']) throw new UsageError('--drain-spool writes into the store: not with --read-only');
    const authToken = values['auth-token-file'] === undefined ? undefined : await readAuthToken(values['auth-token-file']);
    const http = await httpOptions(values);
    const metrics = metricsAddr(values.metrics);
    const needToken = values['metrics-need-token'] === true;
    if (needToken && authToken === undefined) throw new UsageError('--metrics-need-token needs --auth-token-file');
    if (values['http-public-reads'] && (authToken === undefined || !http)) {
      throw new UsageError('--http-public-reads applies to --http with --auth-token-file (without a token every read is public already)');
    }
    if (needToken && !metrics && !http) throw new UsageError('--metrics-need-token applies to /metrics: give --metrics ADDR or --http ADDR too');
    const statsInterval = statsIntervalMs(values['stats-interval']);
    const unwritable = await prepareDataDirs(addrs);
    if (unwritable.length && !readOnly) {
      if (values['drain-spool']) throw new UsageError(`${unwritable.join(', ')} is not writable, and --drain-spool writes into the store`);
      console.error(`nix-castore daemon: ${unwritable.join(', ')} is not writable: serving it read-only`);
      readOnly = true;
    }
    const openSigning = values['dangerously-sign-unauthenticated-writes'] === true;
    const signingProblem = signingPolicyProblem({ signs: !!http?.signingKey, readOnly, authToken: authToken !== undefined, listen, socketMode, openSigning });
    if (signingProblem) throw new UsageError(signingProblem);
    if (openSigning && http?.signingKey) console.error(`nix-castore daemon: WARNING: ${OPEN_SIGNING_FLAG}: anyone who can connect can publish paths signed by ${http.signingKey.name}`);
    const cache = http && (await cacheOptions(values, addrs.pathInfo, readOnly));

    keepServingOnUnhandledRejection();
    sweepNetworkBuffersAtOnce();

    let opened: Store | undefined;
    const admin = adminFor(addrs, () => opened, values['gc-memory']);
    const gcLog = (m: string) => console.error(`nix-castore daemon: ${m}`);
    const gcSchedule = scheduleGc(values, admin, readOnly, gcLog, admin && gcStampFor(addrs));
    await probeScaleout(Object.values(addrs));
    const store = openStore(addrs);
    opened = store;
    if (!readOnly) recordReads(store); // a read-only store records nothing, reads included
    const deltas = readOnly ? undefined : await withDeltas(store, addrs.blob);
    const fromPathRoots = readOnly || !listen.some((l) => l.kind === 'unix') ? [] : await resolveRoots(localFileRoots(values['local-files']));
    const daemon = await startDaemon(store, { listen, maxMessageBytes, socketMode, http: http && { ...http, ...cache, authToken, metricsNeedToken: needToken, persistSignatures: !readOnly }, access: { readOnly, authToken }, limits, admin, log: gcLog, deltas, fromPathRoots }).catch(async (err) => {
      await gcSchedule?.stop();
      await store.close();
      throw err;
    });
    const log = (m: string) => console.error(`nix-castore daemon: ${m}`);
    const ops = await startDaemonMetrics(store, { addr: metrics, served: !!(metrics || http), authToken, tokenRequired: needToken, statsIntervalMs: statsInterval, log }).catch(async (err) => {
      await gcSchedule?.stop();
      await daemon.stop();
      await store.close();
      throw err;
    });
    const backend = redactAddr(addrs.blob === addrs.directory && addrs.blob === addrs.pathInfo ? addrs.blob : JSON.stringify(addrs));
    const cacheLine = daemon.httpUrl
      ? `; Nix binary cache on ${daemon.httpUrl}` +
        (http?.signingKey ? ` (signing as ${formatPublicKey({ name: http.signingKey.name, key: http.signingKey.publicKey })})` : ' (unsigned)')
      : '';
    const access = (readOnly ? '; read-only' : '') + (authToken !== undefined ? '; writes need the bearer token' : '');
    const metricsUrl = ops.url ?? daemon.httpUrl;
    const metricsAt = metricsUrl ? `; metrics on ${metricsUrl}/metrics` : '';
    console.error(`nix-castore daemon: serving ${backend} on ${daemon.addrs.join(', ')}${cacheLine}${access}${metricsAt}`);
    const drainer = values['drain-spool'] ? await startDrainer(values['drain-spool'], store) : undefined;

    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        console.error(`nix-castore daemon: ${sig}, shutting down`);
        resolve();
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    await drainer?.stop();
    await ops.stop();
    await gcSchedule?.stop();
    await daemon.stop();
    await deltas?.index.close();
    await store.close();
    return 0;
  },
};

async function httpOptions(values: { http?: string; 'sign-key-file'?: string; priority?: string; compression?: string; 'compression-level'?: string; 'trusted-upload-keys'?: string[]; 'upload-staging'?: string }) {
  if (values.http === undefined) {
    for (const flag of ['sign-key-file', 'priority', 'compression', 'compression-level', 'trusted-upload-keys', 'upload-staging'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} applies to the binary cache: give --http ADDR too`);
    }
    return undefined;
  }
  let addr;
  try {
    addr = parseHttpAddr(values.http);
  } catch (err) {
    throw new UsageError(`--http: ${(err as Error).message}`);
  }
  const p = values.priority;
  if (p !== undefined && !/^\d{1,9}$/.test(p)) throw new UsageError(`--priority takes a whole number ≥ 0, got ${JSON.stringify(p)}`);
  const signingKey = values['sign-key-file'] === undefined ? undefined : await readSecretKey(values['sign-key-file']);
  return { ...addr, priority: p === undefined ? DEFAULT_PRIORITY : Number(p), signingKey };
}

async function readAuthToken(file: string): Promise<string> {
  try {
    return await readTokenFile(file);
  } catch (err) {
    throw new UsageError(`--auth-token-file: ${(err as Error).message}`);
  }
}

async function readSecretKey(file: string): Promise<SecretKey> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--sign-key-file: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseSecretKey(text);
  } catch (err) {
    throw new UsageError(`--sign-key-file ${file}: ${(err as Error).message}`);
  }
}

function servesItself(addr: string, listen: ListenAddr[]): boolean {
  return listen.some((l) => clientAddr(l) === addr);
}


function octal(v: string): number {
  if (!/^[0-7]{3,4}$/.test(v)) throw new UsageError(`--socket-mode takes an octal mode like 660, got ${JSON.stringify(v)}`);
  return parseInt(v, 8);
}

/** Drains a post-build-hook spool into the daemon's own store, in-process. */
async function startDrainer(dir: string, store: Store): Promise<{ stop(): Promise<void> }> {
  const { watchSpool } = await import('../upload/drain.js');
  console.error(`nix-castore daemon: draining the hook spool ${dir}`);
  return watchSpool(dir, { store, formula: 'head', jobs: 4, log: (m) => console.error(`nix-castore daemon: drain: ${m}`) });
}

/** --local-files: the directories named, 'none' for none, else the Nix store. */
function localFileRoots(flags: string[] | undefined): string[] {
  if (!flags?.length) return [nixStoreDir()];
  if (flags.includes('none')) {
    if (flags.length > 1) throw new UsageError("--local-files none: give no other --local-files");
    return [];
  }
  for (const d of flags) if (!isAbsolute(d)) throw new UsageError(`--local-files ${d}: give an absolute directory`);
  return flags;
}
