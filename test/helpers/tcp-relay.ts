// A TCP relay in front of a real service (PostgreSQL, radosgw) that a test
// can cut — listener closed, live connections reset, so clients see the
// service unreachable — and open again on the same port.
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpRelay {
  private server?: Server;
  private readonly live = new Set<Socket>();
  /** The relay's port (0 until first opened). */
  port = 0;
  constructor(private readonly host: string, private readonly target: number) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const up = connect(this.target, this.host);
      for (const s of [client, up]) {
        this.live.add(s);
        s.on('close', () => this.live.delete(s));
        s.on('error', () => {});
      }
      client.pipe(up).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.live) s.resetAndDestroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}
