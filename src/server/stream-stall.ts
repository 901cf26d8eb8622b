// A single HTTP/2 stream that stops sending its request, or stops reading
// its response, while other streams keep its connection busy: the
// connection's idle timeout never fires, and the stream's buffers (a
// message being reassembled, a response queued behind flow control) would
// be held for as long as the connection lives. Each stream is watched on
// its own: once it has waited on its client with no progress for the stall
// timeout, it is reset (RST_STREAM CANCEL), which frees what it holds and
// cancels its call. Time the daemon itself spends (a long CalculateNAR, a
// stream paused because the store is slow) never counts.
import { constants, type Http2Server, type ServerHttp2Stream } from 'node:http2';

interface Watched {
  /** 'data' and 'drain' events seen, and how many of them the last sweep saw. */
  progress: number;
  seen: number;
  /** Since when the stream has waited on its client without progress. */
  since: number;
}

/** Watches every stream of `servers`; returns a stop function. */
export function resetStalledStreams(servers: Iterable<Http2Server>, stallMs: number): () => void {
  const streams = new Map<ServerHttp2Stream, Watched>();
  const watch = (stream: ServerHttp2Stream) => {
    const w: Watched = { progress: 0, seen: 0, since: Date.now() };
    streams.set(stream, w);
    const step = () => void w.progress++;
    stream.on('data', step);
    stream.on('drain', step);
    stream.once('close', () => streams.delete(stream));
  };
  // Ahead of the daemon's own 'stream' listeners, so the watch is on before any data flows.
  for (const h of servers) h.prependListener('stream', watch);

  const sweep = () => {
    const now = Date.now();
    for (const [stream, w] of streams) {
      if (w.progress !== w.seen || !waitsOnClient(stream)) {
        w.seen = w.progress;
        w.since = now;
      } else if (now - w.since >= stallMs) {
        streams.delete(stream);
        if (!stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
      }
    }
  };
  const timer = setInterval(sweep, Math.max(50, Math.min(1000, stallMs / 4)));
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Whether the stream can only go on once its client acts: it wants more
 * of the request and is reading (not paused by the daemon), or its
 * response is queued waiting for the client to read.
 */
function waitsOnClient(s: ServerHttp2Stream): boolean {
  if (s.destroyed || s.closed) return false;
  const wantsRequest = !s.readableEnded && s.readableFlowing === true;
  return wantsRequest || s.writableNeedDrain;
}
