import type { ActivityRepository, Kpis } from './repository.ts';

const today = (now: Date) => now.toISOString().slice(0, 10);

/**
 * Daily active users, exact: the first authenticated request of a user on a
 * (UTC) day writes one row; later ones that day cost nothing, thanks to a
 * per-process memo that is cleared when the day changes.
 */
export function createActivityService(deps: { activity: ActivityRepository; now?: () => Date }) {
  const now = deps.now ?? (() => new Date());
  let memoDay = '';
  const seen = new Set<string>();
  return {
    async markActive(userId: string): Promise<void> {
      const day = today(now());
      if (day !== memoDay) {
        memoDay = day;
        seen.clear();
      }
      if (seen.has(userId)) return;
      seen.add(userId);
      try {
        await deps.activity.markActive(day, userId);
      } catch (err) {
        seen.delete(userId);
        throw err;
      }
    },
    kpis: (): Promise<Kpis> => deps.activity.kpis(today(now())),
  };
}

export type ActivityService = ReturnType<typeof createActivityService>;
