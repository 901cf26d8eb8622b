// `grpc+unix:///abs/socket`, `grpc+http://host[:port]`, `grpc+https://…`
// (addresses.md §2) → a grpc-js target.
import { invalid } from '../castore/errors.js';

export interface GrpcTarget {
  /** grpc-js channel target, e.g. `unix:///run/x.sock` or `[::1]:8000`. */
  target: string;
  tls: boolean;
  waitConnect: boolean;
}

export function parseGrpcAddr(addr: string): GrpcTarget {
  let u: URL;
  try {
    u = new URL(addr);
  } catch {
    throw invalid(`invalid service address ${JSON.stringify(addr)}`);
  }
  const waitConnect = u.searchParams.get('wait-connect') === '1' || u.searchParams.get('wait-connect') === 'true';
  switch (u.protocol) {
    case 'grpc+unix:':
      if (u.host) throw invalid(`${addr}: grpc+unix takes no host; write grpc+unix:///absolute/path`);
      if (!u.pathname.startsWith('/') || u.pathname === '/') throw invalid(`${addr}: needs an absolute socket path`);
      return { target: `unix://${decodeURIComponent(u.pathname)}`, tls: false, waitConnect };
    case 'grpc+http:':
    case 'grpc+https:': {
      if (u.pathname && u.pathname !== '/') throw invalid(`${addr}: a grpc+http(s) address takes no path`);
      if (!u.hostname) throw invalid(`${addr}: needs a host`);
      const tls = u.protocol === 'grpc+https:';
      const port = u.port || (tls ? '443' : '80');
      return { target: `${u.hostname}:${port}`, tls, waitConnect };
    }
    default:
      throw invalid(`${addr}: not a gRPC address (grpc+unix://, grpc+http:// or grpc+https://)`);
  }
}
