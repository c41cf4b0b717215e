/**
 * Tells every process of a site which cache keys a committed write made
 * stale, so that each drops them from its in-process cache. Where the
 * processes share no cache server, the database they all share carries it.
 */
export interface InvalidationChannel {
  /**
   * Sends `keys` to every other process. Resolves once every other process
   * has confirmed it dropped them (or after a time limit, for one that
   * hangs), so a write is answered only after its invalidation took effect.
   */
  publish(keys: string[]): Promise<void>;
  /**
   * `keys`: what another process published (its confirmation waits for the
   * promise, when it returns one). `gap`: messages may have been missed (a
   * reconnect): drop everything.
   */
  subscribe(listener: { keys(keys: string[]): void | Promise<void>; gap(): void }): void;
  close(): Promise<void>;
}
