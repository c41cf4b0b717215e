/**
 * Tells every process of a site which cache keys a committed write made
 * stale, so that each drops them from its in-process cache. Where the
 * processes share no cache server, the database they all share carries it.
 */
export interface InvalidationChannel {
  /**
   * Sends `keys` to every other process. Resolves once the channel has handed
   * them to every listener (the sender hears its own message back), or after
   * its time limit, so a write's answer leaves after its invalidation.
   */
  publish(keys: string[]): Promise<void>;
  /** `keys`: what another process published. `gap`: messages may have been missed (a reconnect): drop everything. */
  subscribe(listener: { keys(keys: string[]): void; gap(): void }): void;
  close(): Promise<void>;
}
