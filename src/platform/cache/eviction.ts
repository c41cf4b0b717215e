export type EvictionPolicy = 'lru' | 'lfu' | 'fifo';

/**
 * Keeps the order in which keys leave a bounded cache. `touch` is called on a
 * hit, `add` on insert, `remove` on delete, and `victim` names the next key to
 * evict. All operations are O(1).
 */
export interface EvictionOrder {
  add(key: string): void;
  touch(key: string): void;
  remove(key: string): void;
  victim(): string | undefined;
}

/** FIFO evicts the oldest insert; LRU evicts the least recently read or written. */
class InsertionOrder implements EvictionOrder {
  readonly #keys = new Set<string>();
  private readonly refreshOnUse: boolean;
  constructor(refreshOnUse: boolean) {
    this.refreshOnUse = refreshOnUse;
  }
  add(key: string): void {
    if (this.#keys.has(key) && !this.refreshOnUse) return;
    this.#keys.delete(key);
    this.#keys.add(key);
  }
  touch(key: string): void {
    if (!this.refreshOnUse || !this.#keys.has(key)) return;
    this.#keys.delete(key);
    this.#keys.add(key);
  }
  remove(key: string): void {
    this.#keys.delete(key);
  }
  victim(): string | undefined {
    return this.#keys.values().next().value;
  }
}

/** LFU evicts the least often used key; among equals, the least recently used. */
class FrequencyOrder implements EvictionOrder {
  readonly #freq = new Map<string, number>();
  readonly #buckets = new Map<number, Set<string>>();
  #min = 0;

  add(key: string): void {
    if (this.#freq.has(key)) {
      this.touch(key);
      return;
    }
    this.#freq.set(key, 1);
    this.#bucket(1).add(key);
    this.#min = 1;
  }
  touch(key: string): void {
    const f = this.#freq.get(key);
    if (f === undefined) return;
    const bucket = this.#bucket(f);
    bucket.delete(key);
    if (bucket.size === 0) {
      this.#buckets.delete(f);
      if (this.#min === f) this.#min = f + 1;
    }
    this.#freq.set(key, f + 1);
    this.#bucket(f + 1).add(key);
  }
  remove(key: string): void {
    const f = this.#freq.get(key);
    if (f === undefined) return;
    this.#freq.delete(key);
    const bucket = this.#bucket(f);
    bucket.delete(key);
    if (bucket.size === 0) {
      this.#buckets.delete(f);
      if (this.#min === f) this.#min = this.#smallest();
    }
  }
  victim(): string | undefined {
    return this.#buckets.get(this.#min)?.values().next().value;
  }
  #bucket(f: number): Set<string> {
    let b = this.#buckets.get(f);
    if (!b) {
      b = new Set();
      this.#buckets.set(f, b);
    }
    return b;
  }
  #smallest(): number {
    let min = 0;
    for (const f of this.#buckets.keys()) if (min === 0 || f < min) min = f;
    return min;
  }
}

export function evictionOrder(policy: EvictionPolicy): EvictionOrder {
  switch (policy) {
    case 'lru':
      return new InsertionOrder(true);
    case 'fifo':
      return new InsertionOrder(false);
    case 'lfu':
      return new FrequencyOrder();
  }
}
