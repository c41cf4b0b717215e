import net from 'node:net';

export interface DelayProxyOptions {
  listen: { host: string; port: number };
  target: { host: string; port: number };
  /** Added to each direction: a round trip through the proxy takes 2 × this more. */
  delayMs: number;
  /** Where a new connection comes from toward the target (an address of the proxy's own scope). */
  localAddress?: string;
}

export interface DelayProxy {
  /** Connections open now, and since the start. */
  stats(): { open: number; total: number; bytes: { toTarget: number; toClient: number } };
  close(): Promise<void>;
}

/**
 * One direction of a connection, `delayMs` late: each chunk is written once
 * it is that old, in order; the end follows the last chunk. While the writer
 * is full the reader is paused (backpressure), so a fast sender cannot grow
 * the queue without bound.
 */
function delayed(from: net.Socket, to: net.Socket, delayMs: number, count: (n: number) => void): void {
  const queue: { due: number; chunk: Buffer | null }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let waitingDrain = false;
  const pump = () => {
    timer = undefined;
    while (queue.length > 0 && !waitingDrain) {
      const head = queue[0] as { due: number; chunk: Buffer | null };
      const wait = head.due - performance.now();
      if (wait > 0) {
        timer = setTimeout(pump, wait);
        return;
      }
      queue.shift();
      if (head.chunk === null) {
        to.end();
        return;
      }
      count(head.chunk.length);
      if (!to.write(head.chunk)) {
        waitingDrain = true;
        from.pause();
        to.once('drain', () => {
          waitingDrain = false;
          from.resume();
          pump();
        });
      }
    }
  };
  const push = (chunk: Buffer | null) => {
    queue.push({ due: performance.now() + delayMs, chunk });
    if (!timer && !waitingDrain) pump();
  };
  from.on('data', (chunk: Buffer) => push(chunk));
  from.on('end', () => push(null));
}

/**
 * A TCP proxy that delays every byte by `delayMs` each way: the distance
 * between two data centers on one machine, whose kernel has no netem.
 * Replication, cross-data-center writes and Redis replication go through one.
 */
export function startDelayProxy(o: DelayProxyOptions): Promise<DelayProxy> {
  let open = 0;
  let total = 0;
  const bytes = { toTarget: 0, toClient: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    open++;
    total++;
    const upstream = net.connect({
      host: o.target.host,
      port: o.target.port,
      localAddress: o.localAddress,
      allowHalfOpen: true,
      noDelay: true,
    });
    sockets.add(client);
    sockets.add(upstream);
    delayed(client, upstream, o.delayMs, (n) => {
      bytes.toTarget += n;
    });
    delayed(upstream, client, o.delayMs, (n) => {
      bytes.toClient += n;
    });
    let closed = 0;
    const done = () => {
      if (++closed === 2) open--;
    };
    // A reset on either side resets the other (after the delay, as the network would carry it).
    const reset = (other: net.Socket) => () => setTimeout(() => other.destroy(), o.delayMs);
    client.on('error', reset(upstream));
    upstream.on('error', reset(client));
    client.on('close', () => {
      sockets.delete(client);
      done();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      done();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve({
        stats: () => ({ open, total, bytes: { ...bytes } }),
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
