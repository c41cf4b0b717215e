import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface DnsAnswer {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

export interface DnsReply {
  rcode: string;
  answers: DnsAnswer[];
  /** The scope the server gave the client subnet (ECS), when it was sent one. */
  scopePrefixLength?: number;
  ms: number;
}

/**
 * One DNS query over UDP to `server`, as a resolver in the client's network
 * would send it: with EDNS Client Subnet when `subnet` is given (node:dns
 * cannot send ECS). Times out after `timeoutMs`.
 */
export async function queryDns(
  server: { host: string; port: number },
  name: string,
  o: { type?: 'A' | 'TXT' | 'SOA' | 'NS'; subnet?: string; timeoutMs?: number } = {},
): Promise<DnsReply> {
  const id = randomInt(1, 65535);
  const additionals: dnsPacket.Answer[] = [];
  if (o.subnet) {
    const [ip, bits] = o.subnet.split('/');
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: 1232,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      // 8: EDNS Client Subnet (RFC 7871).
      options: [
        { code: 8, family: 1, sourcePrefixLength: Number(bits ?? 32), scopePrefixLength: 0, ip: ip ?? '0.0.0.0' },
      ],
    } as dnsPacket.Answer);
  }
  const packet = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: o.type ?? 'A', name, class: 'IN' }],
    additionals,
  });
  const socket = dgram.createSocket('udp4');
  const started = performance.now();
  try {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no DNS answer from ${server.host}:${server.port} within ${o.timeoutMs ?? 2000} ms`)),
        o.timeoutMs ?? 2000,
      );
      socket.on('message', (msg) => {
        if (msg.readUInt16BE(0) !== id) return;
        clearTimeout(timer);
        resolve(msg);
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.send(packet, server.port, server.host);
    });
    const decoded = dnsPacket.decode(reply);
    const opt = (decoded.additionals ?? []).find((a) => a.type === 'OPT') as
      | { options?: { code: number; scopePrefixLength?: number }[] }
      | undefined;
    const ecs = opt?.options?.find((x) => x.code === 8);
    return {
      rcode: (decoded as { rcode?: string }).rcode ?? 'NOERROR',
      answers: (decoded.answers ?? []).map((a) => ({
        name: a.name,
        type: a.type,
        ttl: (a as { ttl?: number }).ttl ?? 0,
        data: Array.isArray((a as { data?: unknown }).data)
          ? (a as { data: Buffer[] }).data.map((d) => d.toString()).join('')
          : String((a as { data?: unknown }).data),
      })),
      scopePrefixLength: ecs?.scopePrefixLength,
      ms: performance.now() - started,
    };
  } finally {
    socket.close();
  }
}
