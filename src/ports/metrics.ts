/** The business events the app reports; adapters turn them into metrics. */
export interface BusinessMetrics {
  signup(): void;
  upload(): void;
  like(): void;
  jobDone(name: string, seconds: number, outcome: 'ok' | 'retry' | 'failed'): void;
  /** A photo became ready this long after its upload was accepted. */
  photoReady(secondsSinceUpload: number): void;
  /** A job could not be enqueued (the queue's store is down); the database's record brings it back later. */
  enqueueFailed(name: string): void;
}

/** What the precomputed feeds report. */
export interface FeedMetrics {
  /** A missing timeline was rebuilt from the database (kind: home or author). */
  timelineRebuilt(kind: string): void;
  /**
   * A ready photo was pushed to `followers` home timelines in `seconds`: the
   * time from the variants existing to the photo being in its followers'
   * feeds (the photo is marked ready after the push, so the lag from ready is this).
   */
  fannedOut(followers: number, seconds: number): void;
  /** A timeline call failed (the store is down): the feed was read from the database, or a push was skipped. */
  timelineFailed(operation: string): void;
}
