import { readFile, writeFile } from 'node:fs/promises';
import { Pool } from 'undici';
import type { SeedManifest } from './seed.ts';

/** One write the server acknowledged. */
export type LedgerEntry =
  | { kind: 'like'; user: number; photoId: string }
  | { kind: 'follow'; user: number; followee: string }
  | { kind: 'upload'; user: number; photoId: string; caption: string };

/** Every acknowledged write of a run, so that `verify` can check none was lost or doubled. */
export class Ledger {
  readonly entries: LedgerEntry[] = [];
  add(entry: LedgerEntry): void {
    this.entries.push(entry);
  }
  /** Forgets the entries a later write undid (an unfollow of a follow the run made). */
  drop(undone: (e: LedgerEntry) => boolean): void {
    for (let i = this.entries.length - 1; i >= 0; i--)
      if (undone(this.entries[i] as LedgerEntry)) this.entries.splice(i, 1);
  }
  async save(file: string): Promise<void> {
    await writeFile(file, this.entries.map((e) => JSON.stringify(e)).join('\n') + (this.entries.length ? '\n' : ''));
  }
  static async load(file: string): Promise<Ledger> {
    const ledger = new Ledger();
    for (const line of (await readFile(file, 'utf8')).split('\n')) if (line.trim()) ledger.add(JSON.parse(line));
    return ledger;
  }
}

export interface VerifyReport {
  checked: number;
  lost: LedgerEntry[];
  duplicated: LedgerEntry[];
  /** Checks that could not be made (the server did not answer 2xx/404). */
  unknown: { entry: LedgerEntry; status: number }[];
}

/**
 * Asks the server, as each writer, whether each acknowledged write is there:
 * the like is liked by that user, the follow is followed, the upload exists
 * and its unique caption appears exactly once among that user's photos.
 * Reads as the writer are read-your-writes, so replica lag is no excuse.
 */
export async function verifyLedger(
  ledger: Ledger,
  manifest: SeedManifest,
  target = manifest.target,
): Promise<VerifyReport> {
  const pool = new Pool(target, { connections: 8 });
  const report: VerifyReport = { checked: 0, lost: [], duplicated: [], unknown: [] };
  // A read shed with 503 and Retry-After (the balancer's queue, a web server restarting after a kill) is
  // sent again after it, as a well-behaved client does, up to 5 times: the ledger asks what is stored.
  const get = async (path: string, user: number) => {
    for (let attempt = 1; ; attempt++) {
      const res = await pool.request({
        method: 'GET',
        path,
        headers: { authorization: `Bearer ${manifest.tokens[user]}` },
      });
      const text = await res.body.text();
      const retryAfter = Number(res.headers['retry-after']);
      if (res.statusCode === 503 && attempt < 5 && Number.isFinite(retryAfter)) {
        await new Promise((r) => setTimeout(r, Math.min(Math.max(retryAfter, 0.1), 2) * 1000));
        continue;
      }
      return { status: res.statusCode, json: res.statusCode === 200 ? JSON.parse(text) : undefined };
    }
  };
  const uploadsByUser = new Map<number, Map<string, number>>();
  const captionsOf = async (user: number) => {
    let counts = uploadsByUser.get(user);
    if (counts) return counts;
    counts = new Map();
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const page = await get(`/api/v1/users/${manifest.users[user]}/photos${q}`, user);
      if (page.status !== 200) break;
      for (const p of page.json.items as { caption: string }[]) counts.set(p.caption, (counts.get(p.caption) ?? 0) + 1);
      cursor = page.json.nextCursor;
    } while (cursor);
    uploadsByUser.set(user, counts);
    return counts;
  };
  try {
    for (let i = 0; i < ledger.entries.length; i += 8) {
      await Promise.all(
        ledger.entries.slice(i, i + 8).map(async (e) => {
          report.checked++;
          if (e.kind === 'like') {
            const res = await get(`/api/v1/photos/${e.photoId}`, e.user);
            if (res.status === 200) {
              if (!res.json.photo.likedByMe) report.lost.push(e);
            } else if (res.status === 404) report.lost.push(e);
            else report.unknown.push({ entry: e, status: res.status });
          } else if (e.kind === 'follow') {
            const res = await get(`/api/v1/users/${e.followee}`, e.user);
            if (res.status === 200) {
              if (!res.json.following) report.lost.push(e);
            } else report.unknown.push({ entry: e, status: res.status });
          } else {
            const res = await get(`/api/v1/photos/${e.photoId}`, e.user);
            if (res.status === 404) report.lost.push(e);
            else if (res.status !== 200) report.unknown.push({ entry: e, status: res.status });
          }
        }),
      );
    }
    for (const e of ledger.entries) {
      if (e.kind !== 'upload') continue;
      const n = (await captionsOf(e.user)).get(e.caption) ?? 0;
      if (n > 1) report.duplicated.push(e);
    }
  } finally {
    await pool.close();
  }
  return report;
}
