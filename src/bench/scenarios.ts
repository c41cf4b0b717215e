import { randomBytes } from 'node:crypto';
import type { Ledger } from './ledger.ts';
import type { RequestSpec } from './load.ts';
import { mulberry32, type SeedManifest, zipf } from './seed.ts';

export const scenarioNames = ['mixed', 'read-photo', 'upload', 'celebrity', 'writes', 'steady', 'db-writes'] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/** Makes request i of a run; writes record themselves in the ledger when acknowledged. */
export type Scenario = (i: number) => RequestSpec;

/** A small multipart upload body (a 32×24 PNG) with a caption that is unique in the run. */
function multipart(png: Buffer, caption: string) {
  const boundary = `----scaleout${randomBytes(8).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="caption"\r\n\r\n${caption}\r\n`),
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.png"\r\nContent-Type: image/png\r\n\r\n`,
    ),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * The scenarios. `mixed` is shaped like DeathStarBench's social-network mix:
 * 60 % home feed, 30 % someone's photos and profile, 10 % writes (likes,
 * follows, small uploads). `celebrity` reads with Zipf-skewed popularity, so
 * the celebrity's profile and photos are the hot keys. `db-writes` changes
 * a row with every request (a like or an unlike, a follow or an unfollow,
 * each pair toggled from where the run left it), for the database's ceiling:
 * no uploads, whose image work would load the web servers first.
 */
export async function buildScenario(
  name: ScenarioName,
  manifest: SeedManifest,
  ledger: Ledger,
  seed = 7,
): Promise<Scenario> {
  const random = mulberry32(seed);
  const n = manifest.users.length;
  const auth = (u: number) => ({ authorization: `Bearer ${manifest.tokens[u]}` });
  const anyUser = () => Math.floor(random() * n);
  const anyPhoto = () => manifest.photoIds[Math.floor(random() * manifest.photoIds.length)] as string;
  // Loaded here, not at the top: every `scaleout` command (a web server too) imports this module.
  const { default: sharp } = await import('sharp');
  const png = await sharp({ create: { width: 32, height: 24, channels: 3, background: '#4a7' } })
    .png()
    .toBuffer();
  const run = randomBytes(3).toString('hex');

  // Every write carries an Idempotency-Key, unique in the run: the load generator may send it again.
  let writes = 0;
  const keyed = (u: number) => ({ ...auth(u), 'idempotency-key': `bench-${run}-${writes++}` });
  const like = (): RequestSpec => {
    const user = anyUser();
    const photoId = anyPhoto();
    return {
      method: 'PUT',
      path: `/api/v1/photos/${photoId}/like`,
      headers: keyed(user),
      onAnswer: (status) => status === 204 && ledger.add({ kind: 'like', user, photoId }),
    };
  };
  // `steady`: the follows the run made are undone once there are `churnMax` of them (the oldest first), so
  // the follow graph stays as dense as it was seeded instead of filling up over a long run.
  const churnMax = 100;
  const churn =
    name === 'steady' ? { made: [] as { user: number; followee: string }[], busy: new Set<string>() } : null;
  const pairKey = (user: number, followee: string) => `${user}>${followee}`;
  const follow = (): RequestSpec => {
    const oldest = churn && churn.made.length >= churnMax ? churn.made.shift() : undefined;
    if (churn && oldest) {
      const k = pairKey(oldest.user, oldest.followee);
      churn.busy.add(k);
      ledger.drop((e) => e.kind === 'follow' && e.user === oldest.user && e.followee === oldest.followee);
      return {
        method: 'DELETE',
        path: `/api/v1/users/${oldest.followee}/follow`,
        headers: keyed(oldest.user),
        onAnswer: () => churn.busy.delete(k),
      };
    }
    const user = anyUser();
    let other = anyUser();
    if (other === user) other = (other + 1) % n;
    const followee = manifest.users[other] as string;
    // A pair in flight (followed or being unfollowed) is not written again meanwhile (the two could cross).
    if (churn?.busy.has(pairKey(user, followee))) return { path: `/api/v1/users/${followee}`, headers: auth(user) };
    churn?.busy.add(pairKey(user, followee));
    return {
      method: 'PUT',
      path: `/api/v1/users/${followee}/follow`,
      headers: keyed(user),
      onAnswer: (status) => {
        if (status === 204) ledger.add({ kind: 'follow', user, followee });
        if (!churn) return;
        // Kept busy until it is unfollowed; let go now only if it did not take.
        if (status === 204) churn.made.push({ user, followee });
        else churn.busy.delete(pairKey(user, followee));
      },
    };
  };
  const upload = (i: number): RequestSpec => {
    const user = anyUser();
    const caption = `bench ${run} #${i}`;
    const { body, contentType } = multipart(png, caption);
    return {
      method: 'POST',
      path: '/api/v1/photos',
      headers: { ...keyed(user), 'content-type': contentType },
      body,
      onAnswer: (status, text) => {
        if (status === 202) ledger.add({ kind: 'upload', user, photoId: JSON.parse(text).photo.id, caption });
      },
    };
  };
  const profileRead = (username: string, i: number, viewer: number): RequestSpec =>
    i % 2 === 0
      ? { path: `/api/v1/users/${username}/photos`, headers: auth(viewer) }
      : { path: `/api/v1/users/${username}`, headers: auth(viewer) };

  // `db-writes`: each pair's state as the run left it (liked / followed), and the pairs in flight.
  const toggled = new Map<string, boolean>();
  const inFlight = new Set<string>();
  const toggle = (
    pair: string,
    path: string,
    user: number,
    entry: Parameters<Ledger['add']>[0],
    same: (e: Parameters<Ledger['add']>[0]) => boolean,
  ): RequestSpec | undefined => {
    if (inFlight.has(pair)) return undefined;
    inFlight.add(pair);
    const undo = toggled.get(pair) === true;
    return {
      method: undo ? 'DELETE' : 'PUT',
      path,
      headers: keyed(user),
      onAnswer: (status) => {
        inFlight.delete(pair);
        if (status !== 204) return;
        toggled.set(pair, !undo);
        if (undo) ledger.drop(same);
        else ledger.add(entry);
      },
    };
  };
  const dbWrite = (): RequestSpec => {
    for (;;) {
      const user = anyUser();
      if (random() < 0.6) {
        const photoId = anyPhoto();
        const spec = toggle(
          `like ${user} ${photoId}`,
          `/api/v1/photos/${photoId}/like`,
          user,
          { kind: 'like', user, photoId },
          (e) => e.kind === 'like' && e.user === user && e.photoId === photoId,
        );
        if (spec) return spec;
      } else {
        const followee = manifest.users[(user + 1 + Math.floor(random() * (n - 1))) % n] as string;
        const spec = toggle(
          `follow ${user} ${followee}`,
          `/api/v1/users/${followee}/follow`,
          user,
          { kind: 'follow', user, followee },
          (e) => e.kind === 'follow' && e.user === user && e.followee === followee,
        );
        if (spec) return spec;
      }
    }
  };

  switch (name) {
    case 'db-writes':
      return dbWrite;
    case 'read-photo':
      return () => ({ path: `/api/v1/photos/${anyPhoto()}`, headers: auth(anyUser()) });
    case 'upload':
      return upload;
    case 'writes':
      // Write-heavy: what a retry could double (uploads) beside what it could not (likes, follows).
      return (i) => {
        const w = random();
        return w < 0.4 ? like() : w < 0.7 ? follow() : upload(i);
      };
    case 'mixed':
    case 'steady':
      return (i) => {
        const x = random();
        if (x < 0.6) return { path: '/api/v1/feed', headers: auth(anyUser()) };
        if (x < 0.9) return profileRead(manifest.users[anyUser()] as string, i, anyUser());
        const w = random();
        return w < 0.5 ? like() : w < 0.8 ? follow() : upload(i);
      };
    case 'celebrity': {
      const popular = zipf(n, 1.2, random);
      // Rank 0 is the celebrity (user 1), then the viewer, then everyone else.
      const byRank = [1, 0, ...Array.from({ length: Math.max(0, n - 2) }, (_, k) => k + 2)];
      return (i) => {
        const x = random();
        const who = manifest.users[byRank[popular()] as number] as string;
        if (x < 0.5) return { path: '/api/v1/feed', headers: auth(anyUser()) };
        if (x < 0.95) return profileRead(who, i, anyUser());
        return like();
      };
    }
  }
}
