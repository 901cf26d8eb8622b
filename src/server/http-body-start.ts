// An upload whose body never starts is answered, not waited for until the
// connection's --idle-timeout: Nix 2.8 re-sends a PUT that failed (a 5xx)
// with its Content-Length but an empty body, and then waits for our answer
// — 300 s a retry, ~25 minutes before `nix copy` gives up. A body that has
// started is the limits' business (stalls of a body we read are
// backpressure of ours as much as the client's).
import { sendText, type Exchange } from './http-exchange.js';

/** Answers 408 and closes the connection if no byte of the body arrives within `ms`. */
export function watchBodyStart(x: Exchange, ms: number): void {
  const { req } = x;
  if (req.complete || req.headers['content-length'] === '0') return;
  const socket = req.socket;
  const before = socket.bytesRead;
  const timer = setTimeout(() => {
    if (req.complete || socket.bytesRead !== before || x.res.headersSent || x.res.destroyed) return;
    x.note = `no byte of the body in ${ms / 1000} s`;
    x.res.setHeader('Connection', 'close');
    sendText(x, 408, 'text/plain; charset=utf-8', `no byte of the request body arrived in ${ms / 1000} s; send the body with the request\n`);
    // The request too: once its answer is sent, Node no longer ends or
    // aborts it when the socket closes, and the handler reading the body
    // would wait for good (never logged, and holding the daemon's shutdown).
    x.res.once('finish', () => {
      req.destroy(new Error(x.note));
      socket.destroy();
    });
  }, ms);
  timer.unref();
  req.once('close', () => clearTimeout(timer));
}
