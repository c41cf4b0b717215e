const months: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

export type Level = 'debug' | 'info' | 'warn' | 'error';
const rank: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface LogLine {
  service: string;
  /** ms since the epoch; NaN when the line has none (a continuation, say). */
  time: number;
  level: Level;
  text: string;
}

/** The time of a line in any of the formats our servers write: pino, etcd, HAProxy, Patroni, PostgreSQL. */
export function lineTime(text: string): number {
  if (text.startsWith('{')) {
    try {
      const j = JSON.parse(text) as { time?: string | number; ts?: string };
      const t = j.time ?? j.ts;
      if (t !== undefined) return typeof t === 'number' ? t : Date.parse(t);
    } catch {
      // not JSON after all
    }
  }
  const hap = /\[(\d{2})\/(\w{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2})\.(\d{3})\]/.exec(text);
  if (hap) {
    const [, d, mon, y, h, mi, s, ms] = hap;
    return Date.UTC(Number(y), months[mon as string] ?? 0, Number(d), Number(h), Number(mi), Number(s), Number(ms));
  }
  const iso = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})[.,](\d{3})/.exec(text);
  if (iso) return Date.parse(`${iso[1]}T${iso[2]}.${iso[3]}Z`);
  return Number.NaN;
}

export function lineLevel(text: string): Level {
  if (text.startsWith('{')) {
    try {
      const j = JSON.parse(text) as { level?: number | string };
      if (typeof j.level === 'number')
        return j.level >= 50 ? 'error' : j.level >= 40 ? 'warn' : j.level >= 30 ? 'info' : 'debug';
      if (typeof j.level === 'string')
        return j.level === 'warn' || j.level === 'error' ? j.level : j.level === 'debug' ? 'debug' : 'info';
    } catch {
      // fall through
    }
  }
  if (/\b(ERROR|FATAL|PANIC|CRITICAL)\b/.test(text)) return 'error';
  if (/\bWARN(ING)?\b/.test(text)) return 'warn';
  if (/\bDEBUG\b/.test(text)) return 'debug';
  // HAProxy request lines: 5xx are errors.
  const status = / (\d{3}) \d+ [-A-Za-z]{4} "/.exec(text);
  if (status && Number(status[1]) >= 500) return 'error';
  return 'info';
}

/** Splits a chunk of one service's log into lines; lines without a time take the time of the line before. */
export function parseLines(service: string, chunk: string, previousTime = Number.NaN): LogLine[] {
  const out: LogLine[] = [];
  let last = previousTime;
  for (const text of chunk.split('\n')) {
    if (!text) continue;
    const t = lineTime(text);
    if (!Number.isNaN(t)) last = t;
    out.push({ service, time: last, level: lineLevel(text), text });
  }
  return out;
}

export interface LogFilter {
  level?: Level;
  requestId?: string;
}

export function keep(line: LogLine, f: LogFilter): boolean {
  if (f.level && rank[line.level] < rank[f.level]) return false;
  if (f.requestId && !line.text.includes(f.requestId)) return false;
  return true;
}

/** Every service's lines in one stream, ordered by time (stable for equal times). */
export function mergeByTime(lines: LogLine[]): LogLine[] {
  return lines
    .map((l, i) => ({ l, i }))
    .sort((a, b) => (a.l.time || 0) - (b.l.time || 0) || a.i - b.i)
    .map((x) => x.l);
}
