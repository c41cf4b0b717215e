import { describe, expect, it } from 'vitest';
import { keep, lineLevel, lineTime, mergeByTime, parseLines } from '../../src/cluster/logs.ts';

const web = '{"level":30,"time":"2026-11-27T22:34:42.300Z","pid":1,"reqId":"7F-1","msg":"request completed"}';
const webWarn = '{"level":40,"time":"2026-11-27T22:34:42.100Z","reqId":"7F-2","msg":"slow query"}';
const hap =
  '127.0.0.1:5824 [27/Nov/2026:22:34:42.292] public web/web-1 0/0/0/2/2 200 217 ---- "GET /healthz HTTP/1.1" reqId=7F-1';
const hap5xx =
  '127.0.0.1:5825 [27/Nov/2026:22:34:43.000] public web/<NOSRV> 0/-1/-1/-1/0 503 217 SC-- "PUT /x HTTP/1.1" reqId=7F-3';
const patroni = '2026-11-27 22:34:41,999 INFO: following a different leader';
const postgres = '2026-11-27 22:34:42.050 UTC [30386] FATAL:  could not receive data from WAL stream';

describe('log lines', () => {
  it('finds the time in every format the servers write', () => {
    expect(lineTime(web)).toBe(Date.parse('2026-11-27T22:34:42.300Z'));
    expect(lineTime(hap)).toBe(Date.parse('2026-11-27T22:34:42.292Z'));
    expect(lineTime(patroni)).toBe(Date.parse('2026-11-27T22:34:41.999Z'));
    expect(lineTime(postgres)).toBe(Date.parse('2026-11-27T22:34:42.050Z'));
    expect(lineTime('    at Socket.<anonymous>')).toBeNaN();
  });

  it('knows the level', () => {
    expect([web, webWarn, hap, hap5xx, patroni, postgres].map(lineLevel)).toEqual([
      'info',
      'warn',
      'info',
      'error',
      'info',
      'error',
    ]);
  });

  it('merges services by time, keeps continuation lines with their line, and filters', () => {
    const lines = mergeByTime([
      ...parseLines('web-1', `${webWarn}\n${web}\n    at stack frame\n`),
      ...parseLines('load-balancer', `${hap}\n${hap5xx}\n`),
      ...parseLines('pg-1', `${patroni}\n${postgres}\n`),
    ]);
    expect(lines.map((l) => l.service)).toEqual([
      'pg-1',
      'pg-1',
      'web-1',
      'load-balancer',
      'web-1',
      'web-1',
      'load-balancer',
    ]);
    const one = lines.filter((l) => keep(l, { requestId: '7F-1' }));
    expect(one.map((l) => l.service)).toEqual(['load-balancer', 'web-1']);
    expect(lines.filter((l) => keep(l, { level: 'warn' })).map((l) => l.level)).toEqual(['error', 'warn', 'error']);
  });
});
