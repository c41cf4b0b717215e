import { newestFirst, olderThan, type TimelineEntry, type TimelineStore } from '../../ports/timelines.ts';

export interface MemoryTimelineOptions {
  /** Entries kept per timeline (Mastodon and Twitter keep 800). */
  maxEntries: number;
  /** Timelines kept; the least recently used goes first. */
  maxTimelines: number;
  /** A timeline not read for this long is gone (its owner is inactive). */
  ttlSeconds: number;
  now?: () => number;
}

interface Timeline {
  /** Newest first. */
  entries: TimelineEntry[];
  built: boolean;
  /** Never cut to the cap. */
  complete: boolean;
  expiresAt: number;
}

/** Timelines in this process: the single server's, with the semantics of the Redis one. */
export function createMemoryTimelineStore(options: MemoryTimelineOptions): TimelineStore {
  const now = options.now ?? Date.now;
  const timelines = new Map<string, Timeline>();

  const live = (owner: string): Timeline | undefined => {
    const t = timelines.get(owner);
    if (t && t.expiresAt <= now()) {
      timelines.delete(owner);
      return undefined;
    }
    return t;
  };
  const touch = (owner: string, t: Timeline) => {
    t.expiresAt = now() + options.ttlSeconds * 1000;
    timelines.delete(owner);
    timelines.set(owner, t);
  };
  const add = (t: Timeline, entries: TimelineEntry[]) => {
    for (const e of entries) {
      // A photo's time never changes, so an id already there is the same entry.
      if (t.entries.some((x) => x.id === e.id)) continue;
      // Binary search for the place in newest-first order; an id already there stays once.
      let lo = 0;
      let hi = t.entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (newestFirst(t.entries[mid] as TimelineEntry, e) < 0) lo = mid + 1;
        else hi = mid;
      }
      t.entries.splice(lo, 0, { id: e.id, at: e.at });
    }
    if (t.entries.length > options.maxEntries) {
      t.entries.length = options.maxEntries;
      t.complete = false;
    }
  };

  return {
    async read(owner, opts) {
      const t = live(owner);
      if (!t?.built) return undefined;
      touch(owner, t);
      const out: TimelineEntry[] = [];
      for (const e of t.entries) {
        if (out.length >= opts.limit) break;
        if (olderThan(e, opts.before)) out.push({ ...e });
      }
      return { entries: out, complete: t.complete };
    },
    async beginBuild(owner) {
      const t = live(owner) ?? { entries: [], built: false, complete: true, expiresAt: 0 };
      touch(owner, t);
      while (timelines.size > options.maxTimelines) {
        const oldest = timelines.keys().next().value as string;
        timelines.delete(oldest);
      }
    },
    async finishBuild(owner, entries, complete) {
      const t = live(owner);
      if (!t) return false;
      if (t.built) return true;
      if (!complete) t.complete = false;
      add(t, entries);
      t.built = true;
      return true;
    },
    async push(owners, entry) {
      for (const owner of owners) {
        const t = live(owner);
        if (t) add(t, [entry]);
      }
    },
    async merge(owner, entries) {
      const t = live(owner);
      if (t) add(t, entries);
    },
    async unmerge(owner, ids) {
      const t = live(owner);
      if (!t) return;
      if (!t.built) {
        timelines.delete(owner);
        return;
      }
      const gone = new Set(ids);
      t.entries = t.entries.filter((e) => !gone.has(e.id));
    },
    async remove(owners, id) {
      for (const owner of owners) {
        const t = live(owner);
        if (t) t.entries = t.entries.filter((e) => e.id !== id);
      }
    },
    async drop(owner) {
      timelines.delete(owner);
    },
    async close() {
      timelines.clear();
    },
  };
}
