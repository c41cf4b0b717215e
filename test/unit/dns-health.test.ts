import { describe, expect, it } from 'vitest';
import { defaultHysteresis, nextHealth, servedDataCenters } from '../../src/cluster/components/dns/health.ts';
import { renderZone } from '../../src/cluster/components/dns/zone.ts';

const run = (probes: string, up = true) => {
  const s = { up, results: [] as boolean[] };
  return [...probes].map((p) => {
    s.up = nextHealth(s, p === '+', defaultHysteresis);
    return s.up ? 'U' : 'D';
  });
};

describe("the DNS's health of a data center, with hysteresis (3 of the last 5 probes)", () => {
  it('one or two failed probes do not drop a data center; a third within five does', () => {
    expect(run('+-+++-++').join('')).toBe('UUUUUUUU');
    expect(run('+--+-').join('')).toBe('UUUUD');
    expect(run('---').join('')).toBe('UUD');
  });

  it('a data center that is down comes back after three successes in a row, not after one', () => {
    expect(run('+-+-+++', false).join('')).toBe('DDDDDDU');
    expect(run('+++', false).join('')).toBe('DDU');
  });
});

describe('the data centers the DNS serves', () => {
  const states = (o: Record<string, [boolean, number]>) =>
    new Map(Object.entries(o).map(([dc, [up, lastOkAt]]) => [dc, { up, lastOkAt }]));

  it('every one that is up, and only those', () => {
    expect([...servedDataCenters(states({ 'dc-a': [true, 5], 'dc-b': [true, 9] }))]).toEqual(['dc-a', 'dc-b']);
    expect([...servedDataCenters(states({ 'dc-a': [false, 9], 'dc-b': [true, 5] }))]).toEqual(['dc-b']);
  });

  it('none up (the survivor of a loss waiting for its primary): the one whose edge answered last, never none', () => {
    // dc-a killed at 1000; dc-b's readiness failed from 2500 while it had no primary.
    expect([...servedDataCenters(states({ 'dc-a': [false, 1000], 'dc-b': [false, 2500] }))]).toEqual(['dc-b']);
    expect([...servedDataCenters(states({ 'dc-a': [false, 0], 'dc-b': [false, 0] }))]).toEqual([]);
  });
});

describe('the zone', () => {
  const base = {
    zone: 'scaleout.test',
    site: 'www',
    ttl: 5,
    nameServer: '127.9.224.53',
    healthPath: '/readyz',
    dataCenters: [
      { name: 'dc-a', clients: ['10.1.0.0/16'], edge: { host: '127.9.0.10', port: 8081 } },
      { name: 'dc-b', clients: ['10.2.0.0/16'], edge: { host: '127.9.16.10', port: 8081 } },
    ],
  };

  it('each data center’s clients get its edge first; PowerDNS checks the edges (ifurlup) or asks the aggregator (ifurlextup)', () => {
    const own = renderZone(base);
    expect(own).toContain(
      "if netmask({'10.1.0.0/16'}) then return ifurlup('http://www.scaleout.test:8081/readyz', {{'127.9.0.10'},{'127.9.16.10'}}, {timeout=1})",
    );
    expect(own).toContain(
      "elseif netmask({'10.2.0.0/16'}) then return ifurlup('http://www.scaleout.test:8081/readyz', {{'127.9.16.10'},{'127.9.0.10'}}",
    );
    const aggregated = renderZone({ ...base, aggregator: { host: '127.9.224.54', port: 8053 } });
    expect(aggregated).toContain(
      "elseif netmask({'10.2.0.0/16'}) then return ifurlextup({{['127.9.16.10']='http://127.9.224.54:8053/up/dc-b'},{['127.9.0.10']='http://127.9.224.54:8053/up/dc-a'}}, {timeout=1})",
    );
    expect(aggregated).toMatch(/^dc-a IN A 127\.9\.0\.10$/m);
    expect(aggregated).toMatch(/^\$TTL 5$/m);
  });

  it('refuses edges on different ports (one health URL serves every data center)', () => {
    expect(() =>
      renderZone({
        ...base,
        dataCenters: [
          base.dataCenters[0] as never,
          { ...(base.dataCenters[1] as object), edge: { host: 'x', port: 1 } } as never,
        ],
      }),
    ).toThrow(/one port/);
  });
});
