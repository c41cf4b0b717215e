import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { edgesOf } from '../cluster/components/dns/index.ts';
import { queryDns } from '../cluster/components/dns/query.ts';
import { photoSyncUrl } from '../cluster/components/photo-sync/index.ts';
import { killDataCenter } from '../cluster/datacenter/kill.ts';
import type { PhotoSyncView } from '../cluster/datacenter/photo-sync.ts';
import {
  dataCenterRoles,
  hasPrimary,
  othersThan,
  standbyStreams,
  synchronousAcrossOf,
} from '../cluster/datacenter/roles.ts';
import { callWitness } from '../cluster/datacenter/witness-client.ts';
import { isAlive, waitUntil } from '../cluster/process.ts';
import { blobDirOf } from '../cluster/run/context.ts';
import { type ClusterState, stateOf } from '../cluster/run/index.ts';
import { callControlApi } from '../cluster/supervisor/client.ts';
import { type Address, processesOf } from '../cluster/topology/index.ts';
import { multiDcClients, multiDcZone } from '../cluster/topology/multi-dc.ts';
import { Ledger, type LedgerEntry, verifyLedger } from './ledger.ts';
import { defaultRetry, type LoadResult, openLoop } from './load.ts';
import { loadReport, writeReports } from './report.ts';
import { type ResolverAsk, siteResolver } from './resolver.ts';
import { buildScenario } from './scenarios.ts';
import { seed } from './seed.ts';
import { errorCount } from './sweep.ts';
import { startPreset } from './targets.ts';

export type DrillMode = 'async' | 'sync';

export interface DrillOptions {
  out: string;
  modes: DrillMode[];
  /** Requests per second from each data center's clients (open loop, `mixed`). */
  ratePerDataCenter: number;
  seconds: number;
  /** When the primary data center is killed, seconds into the load. */
  killAfter: number;
  users: number;
  photos: number;
  log: (line: string) => void;
}

/** A ledger that also keeps when each write was acknowledged (the RPO in seconds). */
class TimedLedger extends Ledger {
  readonly ackedAt = new WeakMap<LedgerEntry, number>();
  override add(entry: LedgerEntry): void {
    super.add(entry);
    this.ackedAt.set(entry, Date.now());
  }
}

/** What one data center's clients saw. */
export interface DrillClients {
  dataCenter: string;
  sent: number;
  served: number;
  failed: number;
  /** Failed after the kill (the outage), with the kinds of failure. */
  failedAfterKill: number;
  errors: Record<string, number>;
  sentAgain: number;
  p99Ms: number;
  /** From the kill to the first successful answer of a request sent after it (ms). */
  firstSuccessAfterKillMs: number | null;
  /** From the kill to the first new connection their resolver sent to the survivor (ms). */
  resolvedToSurvivorMs: number | null;
  /** From the kill to the last connection refused (ms): a connection to the killed one's address. */
  lastRefusedMs: number | null;
  /** From the kill to the first DNS answer their resolver was given that named the survivor (ms). */
  dnsAnsweredSurvivorMs: number | null;
}

export interface DrillPhase {
  mode: DrillMode;
  /** The data center killed (the primary one), and the one that took over. */
  killed: string;
  survivor: string;
  /** From the kill until the DNS gave the killed one's client subnet the survivor's address (ms). */
  dnsMovedMs: number | null;
  /**
   * Answers for the killed one's client subnet in the 15 s after that (asked every 200 ms) that did not name
   * the survivor first: when (ms from the kill), the addresses, and the health aggregator's `/up/<dc>` status.
   */
  dnsAfterMove: { at: number; addresses: string[]; up: Record<string, number> }[];
  /** From the kill until the witness decided, and until the survivor had a primary (ms). */
  witnessDecidedMs: number | null;
  promotedMs: number | null;
  clients: DrillClients[];
  /** Acknowledged writes (likes, follows, uploads) the survivor does not have: the RPO in writes and in seconds. */
  acknowledgedWrites: number;
  lost: number;
  /** How long before the kill the earliest lost write was acknowledged (s); 0 when none was lost. */
  rpoSeconds: number;
  duplicated: number;
  unverified: number;
  /**
   * Acknowledged uploads whose original the survivor's photo store lacked at the end of the load (the photo
   * sync had not sent it before the kill), and still lacked once the killed data center was back.
   */
  photosMissing: number;
  photosMissingAfterRejoin: number;
  /** Each data center's photo sync at the end of the phase: its last pushes' delay, from a file's write to the other's acknowledgement (ms). */
  photoSyncDelayMs: Record<string, PhotoSyncView['delayMs'] | null>;
  /** From the kill until the killed data center streamed again as a standby (ms), and whether a primary was ever seen in it. */
  rejoinMs: number | null;
  primarySeenInKilled: boolean;
}

type Watched = Pick<DrillClients, 'resolvedToSurvivorMs' | 'lastRefusedMs' | 'dnsAnsweredSurvivorMs'>;
const unwatched: Watched = { resolvedToSurvivorMs: null, lastRefusedMs: null, dnsAnsweredSurvivorMs: null };

const clientsOf = (
  result: LoadResult,
  dataCenter: string,
  failedAfterKill: number,
  firstOk: number | null,
  watched: Watched,
): DrillClients => ({
  dataCenter,
  sent: result.sent,
  served: result.completed,
  failed: errorCount(result),
  failedAfterKill,
  errors: result.errors,
  sentAgain: result.retries,
  p99Ms: result.latencyMs.p99,
  firstSuccessAfterKillMs: firstOk,
  ...watched,
});

/**
 * The data-center drill (step 1.7) on `multi-dc`: open-loop `mixed` from
 * the clients of both data centers, each resolving the site's name through
 * the DNS with its own client subnet, and at `killAfter` every process of
 * the primary data center killed with SIGKILL (its PostgreSQL servers too).
 * Measured: when the DNS moved its clients, when the witness decided and the
 * survivor had a primary, the first success, the failed requests, the RPO
 * (the ledger's acknowledged writes the survivor lacks), and the rejoin as a
 * standby. Asynchronous first (dc-a killed), then synchronous across the data
 * centers (dc-b, the primary by then, killed).
 */
export async function benchDrill(o: DrillOptions): Promise<DrillPhase[]> {
  const target = await startPreset('multi-dc', { name: 'drill', log: o.log });
  try {
    const { runRoot } = target;
    const name = target.state.topology.name;
    const latest = (): ClusterState => stateOf(runRoot, name) as ClusterState;
    const t = latest().topology;
    const dns = processesOf(t, 'dns')[0]?.listen as Address;
    const site = `${multiDcZone.site}.${multiDcZone.zone}`;
    // Where each data center's clients arrive (its edge): what the DNS gives them.
    const entrance = (dc: string) => edgesOf(t, {}).find((d) => d.name === dc)?.edge as Address;
    const direct = (dc: string) => `http://${entrance(dc).host}:${entrance(dc).port}`;
    const dataCenters = t.dataCenters.map((d) => d.name);
    await waitUntil(() => standbyStreams(latest(), 'dc-b'), 60_000, "dc-b's standby leader streaming");
    const manifest = await seed({
      target: direct('dc-a'),
      users: o.users,
      photos: o.photos,
      follows: 20,
      seed: 1,
      log: o.log,
    });
    const phases: DrillPhase[] = [];
    for (const [n, mode] of o.modes.entries()) {
      const killed = dataCenterRoles(latest()).primary;
      const [survivor] = othersThan(t, killed) as [string];
      await callWitness(latest(), 'POST', '/synchronous', { on: mode === 'sync' });
      await waitUntil(
        async () => (await synchronousAcrossOf(latest(), killed)) === (mode === 'sync'),
        20_000,
        `${killed}'s commits ${mode === 'sync' ? 'waiting' : 'not waiting'} for ${survivor}`,
      );
      o.log(`${mode}: ${killed} holds the primary; killing it ${o.killAfter} s into ${o.seconds} s of load`);
      const ledger = new TimedLedger();
      let killedAt = Number.POSITIVE_INFINITY;
      const firstOk: Record<string, number | null> = {};
      const failedAfter: Record<string, number> = {};
      const watched: Record<string, Watched> = {};
      const dnsAfterMove: DrillPhase['dnsAfterMove'] = [];
      /** Every question the clients' stub resolvers asked the DNS, for the phase's resolver.json. */
      const asks: ({ dataCenter: string } & ResolverAsk)[] = [];
      let start = 0;
      const loads = dataCenters.map(async (dc, i) => {
        const subnet = multiDcClients[dc]?.[0] as string;
        const next = await buildScenario('mixed', manifest, ledger, 11 + 2 * n + i);
        firstOk[dc] = null;
        failedAfter[dc] = 0;
        const seen: Watched = { ...unwatched };
        watched[dc] = seen;
        const toSurvivor = (address: string) => {
          if (Date.now() >= killedAt && address === entrance(survivor).host)
            seen.resolvedToSurvivorMs ??= Date.now() - killedAt;
        };
        return openLoop({
          origin: `http://${site}:${entrance(dc).port}`,
          lookup: siteResolver(dns, subnet, {
            onResolved: toSurvivor,
            onAsked: (ask) => asks.push({ dataCenter: dc, ...ask }),
          }).lookup,
          rate: o.ratePerDataCenter,
          seconds: o.seconds,
          connections: 64,
          next,
          // As a client does: a write is sent again with its Idempotency-Key after a reset or a 503.
          retry: defaultRetry,
          onAnswer: (due, _ms, error) => {
            const answeredAt = Date.now();
            if (answeredAt < killedAt) return;
            if (error) failedAfter[dc] = (failedAfter[dc] ?? 0) + 1;
            // The first success of a request sent after the kill (one in flight then may still be answered).
            else if (start + due * 1000 >= killedAt) firstOk[dc] ??= answeredAt - killedAt;
            if (error === 'ECONNREFUSED') seen.lastRefusedMs = answeredAt - killedAt;
          },
        });
      });
      start = Date.now();
      const drill = (async () => {
        await new Promise((r) => setTimeout(r, o.killAfter * 1000));
        const victims = killDataCenter(latest(), killed);
        killedAt = Date.now();
        o.log(
          `${killed} killed: ${victims.killed.length} processes, ${victims.leftovers.length} left by them (${victims.leftovers.map((l) => l.name).join(', ')})`,
        );
        // The return, watched from the kill: the supervisor starts the killed data center again, the fence
        // makes it a standby; a primary seen in it meanwhile would be a second one.
        const rejoin = (async () => {
          let primarySeen = false;
          const ms = await waitUntil(
            async () => {
              if (await hasPrimary(t, killed, 500)) primarySeen = true;
              return standbyStreams(latest(), killed);
            },
            240_000,
            `${killed} streaming as a standby of ${survivor}`,
          )
            .then(() => Date.now() - killedAt)
            .catch(() => null);
          return { ms, primarySeen };
        })();
        let moved: number | null = null;
        await waitUntil(
          async () => {
            const reply = await queryDns(dns, site, { subnet: multiDcClients[killed]?.[0] }).catch(() => null);
            if (reply?.answers.find((a) => a.type === 'A')?.data !== entrance(survivor).host) return false;
            moved = Date.now() - killedAt;
            return true;
          },
          60_000,
          `${killed}'s clients resolved to ${survivor}`,
        ).catch(() => {});
        // After the move, 15 s more of questions every 200 ms: an answer that names the killed one again (a
        // flap of the health check, or PowerDNS giving every address when it sees no group up) is recorded,
        // with what the health aggregator answered for each data center at that moment.
        const aggregator = processesOf(t, 'dnsHealth')[0]?.listen;
        const upOf = async (dc: string) =>
          aggregator
            ? await fetch(`http://${aggregator.host}:${aggregator.port}/up/${dc}`, {
                signal: AbortSignal.timeout(1000),
              })
                .then((r) => r.status)
                .catch(() => 0)
            : 0;
        const until = Date.now() + 15_000;
        while (moved !== null && Date.now() < until) {
          const asked = Date.now();
          const reply = await queryDns(dns, site, { subnet: multiDcClients[killed]?.[0] }).catch(() => null);
          const addresses = reply?.answers.filter((a) => a.type === 'A').map((a) => a.data) ?? [];
          if (addresses[0] !== entrance(survivor).host)
            dnsAfterMove.push({
              at: asked - killedAt,
              addresses,
              up: Object.fromEntries(await Promise.all(dataCenters.map(async (dc) => [dc, await upOf(dc)]))),
            });
          await new Promise((r) => setTimeout(r, Math.max(0, 200 - (Date.now() - asked))));
        }
        return { victims, moved, rejoin };
      })();
      const results = await Promise.all(loads);
      for (const dc of dataCenters) {
        const told = asks.find((a) => a.dataCenter === dc && a.at >= killedAt && a.address === entrance(survivor).host);
        const seen = watched[dc];
        if (seen) seen.dnsAnsweredSurvivorMs = told ? told.at + told.ms - killedAt : null;
      }
      const { victims, moved, rejoin } = await drill;
      const event = latest().dataCenterEvents?.at(-1);
      const decided = event && event.to === survivor ? Date.parse(event.at) - killedAt : null;
      const verified = await verifyLedger(ledger, manifest, direct(survivor));
      const lostAt = verified.lost.map((e) => ledger.ackedAt.get(e) ?? killedAt);
      o.log(
        `${mode}: ${ledger.entries.length} writes acknowledged, ${verified.lost.length} lost, ${verified.duplicated.length} duplicated, ${verified.unknown.length} not verified`,
      );
      const uploads = ledger.entries.flatMap((e) => (e.kind === 'upload' ? [e.photoId] : []));
      const missingIn = (dc: string) =>
        uploads.filter((id) => !existsSync(path.join(blobDirOf(latest(), dc), 'photos', id, 'original'))).length;
      const photosMissing = missingIn(survivor);
      const { ms: rejoined, primarySeen } = await rejoin;
      // Back, the killed data center's photo sync sends what it stored and had not sent.
      await waitUntil(() => missingIn(survivor) === 0, 20_000, `every acknowledged photo in ${survivor}`).catch(
        () => {},
      );
      const photosMissingAfterRejoin = missingIn(survivor);
      const photoSyncDelayMs: DrillPhase['photoSyncDelayMs'] = {};
      for (const dc of dataCenters) {
        const spec = processesOf(t, 'photoSync', { dataCenter: dc })[0];
        const round = (d: PhotoSyncView['delayMs']) => ({
          count: d.count,
          p50: Math.round(d.p50),
          p99: Math.round(d.p99),
          max: Math.round(d.max),
        });
        photoSyncDelayMs[dc] = spec
          ? await callControlApi<PhotoSyncView>(latest(), photoSyncUrl(spec), 'the photo sync', 'GET', '/status').then(
              (r) => round(r.body.delayMs),
              () => null,
            )
          : null;
      }
      const back = victims.killed.filter((p) => latest().processes.some((q) => q.name === p && isAlive(q.pid)));
      o.log(`${killed} rejoined after ${rejoined} ms (${back.length} of ${victims.killed.length} processes running)`);
      const phase: DrillPhase = {
        mode,
        killed,
        survivor,
        dnsMovedMs: moved,
        dnsAfterMove,
        witnessDecidedMs: decided,
        promotedMs: decided !== null && event?.promotedMs !== undefined ? decided + event.promotedMs : null,
        clients: results.map((r, i) => {
          const dc = dataCenters[i] as string;
          return clientsOf(r, dc, failedAfter[dc] ?? 0, firstOk[dc] ?? null, watched[dc] ?? unwatched);
        }),
        acknowledgedWrites: ledger.entries.length,
        lost: verified.lost.length,
        rpoSeconds: lostAt.length ? Math.round((killedAt - Math.min(...lostAt)) / 10) / 100 : 0,
        duplicated: verified.duplicated.length,
        unverified: verified.unknown.length,
        photosMissing,
        photosMissingAfterRejoin,
        photoSyncDelayMs,
        rejoinMs: rejoined,
        primarySeenInKilled: primarySeen,
      };
      phases.push(phase);
      await writeDrillReport(path.join(o.out, mode), phase, results, dataCenters, o, (killedAt - start) / 1000);
      // What the stub resolvers asked and were told, from 10 s before the kill (ms from the kill).
      await writeFile(
        path.join(o.out, mode, 'resolver.jsonl'),
        asks
          .filter((a) => a.at >= killedAt - 10_000)
          .map((a) => JSON.stringify({ ...a, at: a.at - killedAt }))
          .join('\n'),
      );
    }
    await callWitness(latest(), 'POST', '/synchronous', { on: false }).catch(() => {});
    return phases;
  } finally {
    await target.stop();
  }
}

/** report.html of one phase: rate, errors and p99 of each data center's clients, second by second, the kill marked. */
async function writeDrillReport(
  dir: string,
  phase: DrillPhase,
  results: LoadResult[],
  dataCenters: string[],
  o: DrillOptions,
  killSecond: number,
) {
  const [first] = results as [LoadResult];
  const seconds = Math.max(...results.map((r) => r.timeline.length));
  const series = (pick: (p: LoadResult['timeline'][number]) => number) =>
    Object.fromEntries(
      results.map((r, i) => [
        dataCenters[i] as string,
        Array.from({ length: seconds }, (_, s) => {
          const p = r.timeline[s];
          return p ? pick(p) : null;
        }),
      ]),
    );
  const mark = (label: string, ms: number | null) =>
    ms === null ? [] : [{ t: Math.round((killSecond + ms / 1000) * 10) / 10, label }];
  await writeReports(dir, {
    ...loadReport(
      {
        scenario: `drill (${phase.mode} across the data centers): ${phase.killed} killed under mixed from both data centers' clients through the DNS; the main charts are ${phase.killed}'s clients`,
        target: `http://${multiDcZone.site}.${multiDcZone.zone} (each data center's clients with their subnet)`,
        rate: o.ratePerDataCenter,
        durationSeconds: o.seconds,
        connections: 64,
      },
      results[dataCenters.indexOf(phase.killed)] ?? first,
      phase.acknowledgedWrites,
    ),
    timeline: Array.from({ length: seconds }, (_, s) => ({
      ...(results[dataCenters.indexOf(phase.killed)]?.timeline[s] ?? { ok: 0, errors: 0, p50: 0, p99: 0 }),
      t: s,
    })),
    charts: [
      { title: 'answered per second, by the clients of each data center', series: series((p) => p.ok) },
      { title: 'failed per second, by the clients of each data center', series: series((p) => p.errors) },
      { title: 'p99 latency, ms, by the clients of each data center', series: series((p) => p.p99) },
    ],
    marks: [
      { t: Math.round(killSecond * 10) / 10, label: `${phase.killed} killed` },
      ...mark(`DNS → ${phase.survivor}`, phase.dnsMovedMs),
      ...mark(`${phase.survivor} primary`, phase.promotedMs),
    ],
  });
}

export function drillSummary(
  phases: DrillPhase[],
  o: Pick<DrillOptions, 'ratePerDataCenter' | 'seconds' | 'killAfter'>,
): string {
  const ms = (x: number | null) => (x === null ? '–' : `${(x / 1000).toFixed(1)} s`);
  const lines = [
    `Each data center's clients: open-loop \`mixed\` at ${o.ratePerDataCenter} req/s for ${o.seconds} s through the DNS (their own client subnet, the answer kept for its TTL), writes sent again with their Idempotency-Key after a reset or a 503; the primary data center killed (SIGKILL, every process and its PostgreSQL servers) at ${o.killAfter} s.`,
    '',
    `| | ${phases.map((p) => `${p.mode}: ${p.killed} killed`).join(' | ')} |`,
    `|---|${phases.map(() => '---:').join('|')}|`,
    `| DNS gives the killed one's clients the survivor | ${phases.map((p) => ms(p.dnsMovedMs)).join(' | ')} |`,
    `| … then, in the next 15 s (asked every 200 ms), answers naming the killed one first | ${phases.map((p) => (p.dnsAfterMove.length ? `${p.dnsAfterMove.length}, ${ms(p.dnsAfterMove[0]?.at ?? null)}–${ms(p.dnsAfterMove.at(-1)?.at ?? null)} (${[...new Set(p.dnsAfterMove.map((d) => d.addresses.length))].join('/')} addresses)` : '0')).join(' | ')} |`,
    `| the witness decides | ${phases.map((p) => ms(p.witnessDecidedMs)).join(' | ')} |`,
    `| the survivor has a primary | ${phases.map((p) => ms(p.promotedMs)).join(' | ')} |`,
  ];
  for (const dc of phases[0]?.clients.map((c) => c.dataCenter) ?? []) {
    const c = (p: DrillPhase) => p.clients.find((x) => x.dataCenter === dc) as DrillClients;
    lines.push(
      `| ${dc}'s clients: the DNS tells their resolver the survivor / it sends a connection there / the last connection refused | ${phases.map((p) => `${ms(c(p).dnsAnsweredSurvivorMs)} / ${ms(c(p).resolvedToSurvivorMs)} / ${ms(c(p).lastRefusedMs)}`).join(' | ')} |`,
      `| ${dc}'s clients: first success of a request sent after the kill | ${phases.map((p) => ms(c(p).firstSuccessAfterKillMs)).join(' | ')} |`,
      `| ${dc}'s clients: failed / sent (after the kill) | ${phases.map((p) => `${c(p).failed} / ${c(p).sent} (${c(p).failedAfterKill})`).join(' | ')} |`,
      `| ${dc}'s clients: sent again, p99 | ${phases.map((p) => `${c(p).sentAgain}, ${c(p).p99Ms} ms`).join(' | ')} |`,
    );
  }
  lines.push(
    `| acknowledged writes (likes, follows, uploads) | ${phases.map((p) => p.acknowledgedWrites).join(' | ')} |`,
    `| **RPO: acknowledged and lost** | ${phases.map((p) => `**${p.lost}** (${p.rpoSeconds} s)`).join(' | ')} |`,
    `| duplicated / not verifiable | ${phases.map((p) => `${p.duplicated} / ${p.unverified}`).join(' | ')} |`,
    `| acknowledged photos whose original the survivor lacked: at the end of the load, once the killed one was back | ${phases.map((p) => `${p.photosMissing}, ${p.photosMissingAfterRejoin}`).join(' | ')} |`,
    ...(phases[0]?.clients.map((c) => c.dataCenter) ?? []).map(
      (dc) =>
        `| ${dc}'s photo sync: a file's delay to the other, p50 / p99 / max (files) | ${phases
          .map((p) => {
            const d = p.photoSyncDelayMs[dc];
            return d ? `${d.p50} / ${d.p99} / ${d.max} ms (${d.count})` : '–';
          })
          .join(' | ')} |`,
    ),
    `| the killed one streams again as a standby | ${phases.map((p) => ms(p.rejoinMs)).join(' | ')} |`,
    `| a primary seen in the killed one meanwhile | ${phases.map((p) => (p.primarySeenInKilled ? '**yes**' : 'no')).join(' | ')} |`,
    '',
    'Errors by kind: ' +
      phases
        .map(
          (p) =>
            `${p.mode}: ${p.clients
              .map(
                (c) =>
                  `${c.dataCenter} ${
                    Object.entries(c.errors)
                      .map(([k, v]) => `${k} ${v}`)
                      .join(', ') || 'none'
                  }`,
              )
              .join('; ')}`,
        )
        .join(' · '),
    '',
    `Each phase's \`report.html\` (in \`${phases.map((p) => p.mode).join('/`, `')}/\`) draws the rate, the failures and the p99 of each data center's clients, second by second, the kill, the DNS change and the promotion marked.`,
  );
  return lines.join('\n');
}
