/** One item of a timeline: a photo id and its time (ms since the epoch), the sort key. */
export interface TimelineEntry {
  id: string;
  at: number;
}

export interface TimelineRead {
  entries: TimelineEntry[];
  complete: boolean;
}

/** Raised while a timeline store cannot be reached: the caller answers from the database instead. */
export class TimelineUnavailableError extends Error {
  override name = 'TimelineUnavailableError';
}

/**
 * Precomputed timelines (home feeds, an author's recent photos): per owner,
 * photo ids ordered newest first by (at, id), capped. Never the only copy: a
 * timeline that is missing (never built, expired, evicted, lost) is rebuilt
 * from the database, so every write here is best effort.
 *
 * A rebuild is two steps so that no push is lost to it: `beginBuild` marks the
 * timeline as building (pushes land in it from then on), the caller reads the
 * database, and `finishBuild` adds what it read, unless the timeline was
 * dropped meanwhile (an unfollow), in which case nothing is stored.
 */
export interface TimelineStore {
  /**
   * Up to `limit` entries strictly older than `before` in (at, id) order,
   * newest first; undefined when the timeline is not built. `complete` says
   * the timeline was never cut to its cap: nothing older exists than what it
   * holds, so a short answer is the end. A read renews the timeline's time
   * to live: a timeline nobody reads expires.
   */
  read(owner: string, opts: { before?: TimelineEntry; limit: number }): Promise<TimelineRead | undefined>;
  beginBuild(owner: string): Promise<void>;
  /**
   * Stores what a build read (`complete`: all there is, not a capped page).
   * True when stored; false when the timeline was dropped since `beginBuild`.
   */
  finishBuild(owner: string, entries: TimelineEntry[], complete: boolean): Promise<boolean>;
  /** Adds the entry to each of these timelines that exists (built or building); the others stay missing. */
  push(owners: string[], entry: TimelineEntry): Promise<void>;
  /** Adds entries to one timeline if it exists (a follow). */
  merge(owner: string, entries: TimelineEntry[]): Promise<void>;
  /**
   * Removes entries from a built timeline (an unfollow). One still building
   * is dropped instead, so the build in flight, which may have read the
   * entries before they went, stores nothing.
   */
  unmerge(owner: string, ids: string[]): Promise<void>;
  /** Removes one entry from each of these timelines (a deleted photo). */
  remove(owners: string[], id: string): Promise<void>;
  drop(owner: string): Promise<void>;
  close(): Promise<void>;
}

/** (at, id) order, newest first: the order of the feed's keyset cursor. */
export const newestFirst = (a: TimelineEntry, b: TimelineEntry): number =>
  b.at - a.at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** True when `e` comes after `before` in newest-first order (is older). */
export const olderThan = (e: TimelineEntry, before: TimelineEntry | undefined): boolean =>
  before === undefined || newestFirst(before, e) < 0;
