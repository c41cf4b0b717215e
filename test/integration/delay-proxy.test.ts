import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DelayProxy, startDelayProxy } from '../../src/cluster/components/delay-proxy/proxy.ts';
import { freePort } from '../support/addresses.ts';
import { quantile } from '../support/cluster.ts';

/** An echo server on a free loopback port. */
async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const connect = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });

/** Sends `data` and resolves once as many bytes came back, with the milliseconds it took. */
function roundTrip(s: net.Socket, data: Buffer): Promise<{ ms: number; back: Buffer }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const started = performance.now();
    const onData = (chunk: Buffer) => {
      parts.push(chunk);
      got += chunk.length;
      if (got >= data.length) {
        s.off('data', onData);
        resolve({ ms: performance.now() - started, back: Buffer.concat(parts) });
      }
    };
    s.on('data', onData);
    s.write(data);
  });
}

describe('the delaying TCP proxy between data centers (no netem on this kernel)', () => {
  const delayMs = 20;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let proxy: DelayProxy;
  let port: number;

  beforeAll(async () => {
    echo = await echoServer();
    port = await freePort();
    proxy = await startDelayProxy({
      listen: { host: '127.0.0.1', port },
      target: { host: '127.0.0.1', port: echo.port },
      delayMs,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await echo?.close();
  });

  it('adds the delay each way: a round trip takes 2 × 20 ms more than without it', async () => {
    const direct = await connect(echo.port);
    const through = await connect(port);
    const base: number[] = [];
    const delayed: number[] = [];
    for (let i = 0; i < 20; i++) {
      base.push((await roundTrip(direct, Buffer.from(`ping ${i}`))).ms);
      delayed.push((await roundTrip(through, Buffer.from(`ping ${i}`))).ms);
    }
    direct.destroy();
    through.destroy();
    const added = quantile(delayed, 0.5) - quantile(base, 0.5);
    console.log(
      `delay proxy: round trip p50 ${quantile(delayed, 0.5).toFixed(1)} ms through it, ${quantile(base, 0.5).toFixed(2)} ms direct (+${added.toFixed(1)} ms for 2 × ${delayMs} ms)`,
    );
    // Never less than the delay both ways; not much more (timers fire late under load, not early).
    expect(Math.min(...delayed)).toBeGreaterThanOrEqual(2 * delayMs - 1);
    expect(added).toBeLessThan(2 * delayMs + 25);
  });

  it('keeps every byte and its order, under backpressure too (4 MB echoed back)', async () => {
    const s = await connect(port);
    const data = randomBytes(4 * 1024 * 1024);
    const { back, ms } = await roundTrip(s, data);
    s.destroy();
    expect(back.equals(data)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(2 * delayMs - 1);
  });

  it('carries a close: the far side ends after the data, and the proxy forgets the connection', async () => {
    const s = await connect(port);
    const ended = new Promise<number>((r) => {
      const started = performance.now();
      s.on('end', () => r(performance.now() - started));
    });
    s.resume();
    s.end('bye');
    expect(await ended).toBeGreaterThanOrEqual(2 * delayMs - 1);
    s.destroy();
    await expect.poll(() => proxy.stats().open, { timeout: 2000 }).toBe(0);
  });
});
