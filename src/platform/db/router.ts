import type { Db } from '../../ports/db.ts';

/** One database behind every logical shard: the router of every unsharded topology. */
export function unsharded<T extends Omit<Db, 'forKey' | 'forUsername' | 'each'>>(db: T): T & Db {
  const self: T & Db = { ...db, forKey: () => self, forUsername: () => self, each: () => [self] };
  return self;
}
