import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ResolverAsk, siteResolver } from '../../src/bench/resolver.ts';

/** A DNS server on loopback that answers every A question with `answer` (TTL 1 s), or not at all while `silent`. */
const server = dgram.createSocket('udp4');
const answer = { address: '127.9.0.1', silent: false };
const asked: string[] = [];

beforeAll(async () => {
  server.on('message', (msg, from) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions?.[0];
    if (!question) return;
    const subnet = (q.additionals ?? [])
      .flatMap((a) => (a as { options?: { code: number; ip?: string; sourcePrefixLength?: number }[] }).options ?? [])
      .find((o) => o.code === 8);
    asked.push(`${question.name} ${subnet ? `${subnet.ip}/${subnet.sourcePrefixLength}` : 'no subnet'}`);
    if (answer.silent) return;
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      questions: q.questions,
      answers: [{ type: 'A', name: question.name, ttl: 1, class: 'IN', data: answer.address }],
    });
    server.send(reply, from.port, from.address);
  });
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
});
afterAll(() => server.close());

const lookupOnce = (lookup: ReturnType<typeof siteResolver>['lookup']) =>
  new Promise<string>((resolve, reject) =>
    lookup('www.scaleout.test', { all: true }, (err, addresses) =>
      err ? reject(err) : resolve((addresses as unknown as { address: string }[])[0]?.address as string),
    ),
  );

describe("the load generator's stub resolver", () => {
  it('asks with its client subnet, keeps the answer for its TTL, asks again after it, keeps the last answer while the server is silent', async () => {
    const { port } = server.address() as AddressInfo;
    const asks: ResolverAsk[] = [];
    const given: string[] = [];
    const { lookup } = siteResolver({ host: '127.0.0.1', port }, '10.1.0.0/16', {
      onAsked: (a) => asks.push(a),
      onResolved: (a) => given.push(a),
    });
    expect(await lookupOnce(lookup)).toBe('127.9.0.1');
    expect(asked.at(-1)).toBe('www.scaleout.test 10.1.0.0/16');
    answer.address = '127.9.0.2';
    // Within the TTL: the kept answer, no question.
    expect(await lookupOnce(lookup)).toBe('127.9.0.1');
    expect(asks).toHaveLength(1);
    expect(asks[0]).toMatchObject({ address: '127.9.0.1', ttl: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    expect(await lookupOnce(lookup)).toBe('127.9.0.2');
    expect(asks).toHaveLength(2);
    // The server silent past the TTL: the last answer still, and the question that got none recorded.
    answer.silent = true;
    await new Promise((r) => setTimeout(r, 1100));
    expect(await lookupOnce(lookup)).toBe('127.9.0.2');
    expect(asks.at(-1)?.error).toMatch(/no DNS answer/);
    expect(given).toEqual(['127.9.0.1', '127.9.0.1', '127.9.0.2', '127.9.0.2']);
    answer.silent = false;
  });
});
