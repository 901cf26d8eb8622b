// One grpc-js client (one HTTP/2 connection) per address, shared by the
// blob, directory and PathInfo client backends and closed with the last.
import * as grpc from '@grpc/grpc-js';
import { parseGrpcAddr } from './address.js';
import { CastoreError } from '../castore/errors.js';
import { AUTH_TOKEN_FILE_ENV, MAX_MESSAGE_BYTES, PING_MS, clientAuthToken } from './client-settings.js';

interface Entry {
  client: grpc.Client;
  users: number;
  ready: Promise<void>;
}
const clients = new Map<string, Entry>();

export interface SharedClient {
  client: grpc.Client;
  /** Resolves when connected (only awaited with `?wait-connect=1`). */
  ready: Promise<void>;
  /**
   * Resolves once the connection is up or has failed (a call then fails at
   * once, UNAVAILABLE); rejects if it is still being set up after
   * 2 × NIX_CASTORE_PING_MS: something accepted the connection and never
   * answered (a stopped daemon), where a call would wait for ever.
   */
  answering(): Promise<void>;
  release(): void;
}

/**
 * Adds `authorization: Bearer <token>` to every call. Per-call metadata
 * rather than call credentials: grpc-js only combines those with TLS, and
 * the daemon is mostly reached over unix sockets and loopback h2c.
 */
function bearer(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

export function acquireClient(addr: string): SharedClient {
  const t = parseGrpcAddr(addr);
  const token = clientAuthToken();
  const key = `${t.tls ? 's' : 'p'}:${t.target}${token === undefined ? '' : ` auth:${process.env[AUTH_TOKEN_FILE_ENV]}`}`;
  let e = clients.get(key);
  if (!e) {
    const creds = t.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
    const client = new grpc.Client(t.target, creds, {
      ...(token === undefined ? {} : { interceptors: [bearer(token)] }),
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // Large receive windows: 64 KiB ones stall big Reads (see server/daemon.ts).
      'grpc-node.flow_control_window': 32 * 1024 * 1024,
      // PINGs while calls are in flight (as the lean client does): a daemon
      // that stopped answering fails the call instead of hanging it.
      'grpc.keepalive_time_ms': PING_MS,
      'grpc.keepalive_timeout_ms': PING_MS,
      // tvix clients use this authority for unix sockets; servers must not care.
      ...(t.target.startsWith('unix:') ? { 'grpc.default_authority': 'localhost' } : {}),
    });
    const ready = t.waitConnect
      ? new Promise<void>((res, rej) =>
          client.waitForReady(Date.now() + 10_000, (err) => (err ? rej(new Error(`cannot connect to ${addr}: ${err.message}`)) : res())),
        )
      : Promise.resolve();
    e = { client, users: 0, ready };
    clients.set(key, e);
  }
  e.users++;
  const entry = e;
  let released = false;
  return {
    client: entry.client,
    ready: entry.ready,
    answering: () => answering(entry.client, addr, 2 * PING_MS),
    release() {
      if (released) return;
      released = true;
      if (--entry.users === 0) {
        clients.delete(key);
        entry.client.close();
      }
    },
  };
}

function answering(client: grpc.Client, addr: string, ms: number): Promise<void> {
  const channel = client.getChannel();
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const look = () => {
      const state = channel.getConnectivityState(true);
      if (state !== grpc.connectivityState.IDLE && state !== grpc.connectivityState.CONNECTING) return resolve();
      if (Date.now() >= deadline) {
        return reject(new CastoreError('unavailable', `no answer from ${addr} in ${Math.round(ms / 1000)} s (a daemon stopped, or something else listening there)`));
      }
      channel.watchConnectivityState(state, deadline, look);
    };
    look();
  });
}
