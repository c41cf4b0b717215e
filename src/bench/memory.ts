import { readFile } from 'node:fs/promises';

/**
 * Where a process's resident memory is, in MB: from /proc/<pid>/smaps (each
 * mapping's Rss, by what it maps) and the process's own /metrics (the V8 heap
 * and external memory, prom-client's default metrics).
 */
export interface MemoryBreakdown {
  pid: number;
  rssMb: number;
  /** V8's heap: committed (what it holds from the OS) and in use. */
  heapCommittedMb: number;
  heapUsedMb: number;
  /** Memory V8 accounts to JS objects outside its heap (Buffers, ArrayBuffers). */
  externalMb: number;
  /** The node binary's mapped pages (its code and read-only data). */
  nodeBinaryMb: number;
  /** libvips and the other native libraries of sharp (absent until a process makes a variant). */
  imageLibrariesMb: number;
  /** Every other shared library. */
  otherLibrariesMb: number;
  /** Anonymous memory that is not V8's heap: malloc's arenas (external memory lives there), thread stacks, V8's code space. */
  nativeAnonymousMb: number;
  /** In the in-process (L1) cache: entries, and the MB of their JSON. */
  cacheEntries?: number;
  cacheJsonMb?: number;
}

const mb = (kb: number) => Math.round(kb / 102.4) / 10;

/** Rss per mapping kind from /proc/<pid>/smaps, in kB. */
export async function smapsByKind(pid: number): Promise<Record<'binary' | 'image' | 'lib' | 'anon', number>> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const totals = { binary: 0, image: 0, lib: 0, anon: 0 };
  let kind: keyof typeof totals = 'anon';
  for (const line of text.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const file = header[1] ?? '';
      kind =
        file === '' || file.startsWith('[')
          ? 'anon'
          : /sharp|vips/.test(file)
            ? 'image'
            : /\/node$/.test(file)
              ? 'binary'
              : 'lib';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) totals[kind] += Number(rss[1]);
  }
  return totals;
}

/** A process's breakdown: its smaps, and its metrics endpoint (`metricsUrl`) for the V8 figures. */
export async function memoryBreakdown(pid: number, metricsUrl: string): Promise<MemoryBreakdown> {
  const [kinds, metrics] = await Promise.all([
    smapsByKind(pid),
    fetch(metricsUrl, { signal: AbortSignal.timeout(5000) })
      .then((r) => r.text())
      .catch(() => ''),
  ]);
  // A metric's value, or undefined when the process does not export it.
  const sample = (name: string) => {
    const v = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(metrics)?.[1];
    return v === undefined ? undefined : Number(v);
  };
  const value = (name: string) => sample(name) ?? 0;
  const heapCommitted = value('nodejs_heap_size_total_bytes') / 1024;
  const cacheBytes = sample('scaleout_cache_bytes');
  const rss = kinds.binary + kinds.image + kinds.lib + kinds.anon;
  return {
    pid,
    rssMb: mb(rss),
    heapCommittedMb: mb(heapCommitted),
    heapUsedMb: mb(value('nodejs_heap_size_used_bytes') / 1024),
    externalMb: mb(value('nodejs_external_memory_bytes') / 1024),
    nodeBinaryMb: mb(kinds.binary),
    imageLibrariesMb: mb(kinds.image),
    otherLibrariesMb: mb(kinds.lib),
    // V8's committed heap is resident only where touched: what is left of the anonymous pages is native.
    nativeAnonymousMb: mb(Math.max(0, kinds.anon - heapCommitted)),
    cacheEntries: sample('scaleout_cache_entries'),
    cacheJsonMb: cacheBytes === undefined ? undefined : mb(cacheBytes / 1024),
  };
}

export const breakdownHeader =
  '| process | RSS | V8 heap committed | in use | external | node binary | image libraries | other libraries | native anonymous | L1 entries | L1 JSON MB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';

export const breakdownRow = (name: string, b: MemoryBreakdown) =>
  `| ${name} | ${b.rssMb} | ${b.heapCommittedMb} | ${b.heapUsedMb} | ${b.externalMb} | ${b.nodeBinaryMb} | ${b.imageLibrariesMb} | ${b.otherLibrariesMb} | ${b.nativeAnonymousMb} | ${b.cacheEntries ?? '–'} | ${b.cacheJsonMb ?? '–'} |`;
