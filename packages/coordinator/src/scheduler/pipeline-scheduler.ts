import type { FilterPlugin, FilterResult, ScorePlugin } from './plugins.js';
import {
  summariseRejections,
  type CandidateRecord,
  type FilterVerdict,
  type HostSnapshot,
  type PlacementRecord,
  type PlacementRequest,
  type ScoreDetail,
  type Scheduler,
} from './scheduler.js';

export interface PipelineOptions {
  filters: readonly FilterPlugin[];
  /** Scorers with their weights; weight 0 disables one. */
  scorers: readonly { plugin: ScorePlugin; weight: number }[];
  /**
   * Stop filtering once this many feasible hosts are found, and score only
   * those (Kubernetes' percentageOfNodesToScore, Nomad's limit iterator).
   * Each placement starts where the last one stopped, so every host gets its
   * turn. 0 evaluates every host. @default 16
   */
  candidateLimit: number;
  /**
   * Rejected hosts listed in a record; `rejections` still counts them all.
   * Keeps records small when a request is checked against thousands of hosts.
   * A listed host gets every filter's verdict, so this also bounds the filter
   * calls a placement spends on the record beyond its first rejections. @default 32
   */
  maxRejectedInRecord?: number;
}

/**
 * Filter then score. Filters run in the given order and a host's evaluation
 * stops at its first rejection, which is the one counted in `rejections`.
 * The exception is a rejected host that the record lists (the first
 * `maxRejectedInRecord`): the remaining filters run on it too, so `explain`
 * shows every verdict; that costs at most `maxRejectedInRecord` hosts per
 * placement and changes no count. When nothing fits, every host is evaluated
 * so the summary counts them all.
 */
export class PipelineScheduler implements Scheduler {
  private nextStart = 0;
  private readonly scorers: readonly { plugin: ScorePlugin; weight: number }[];
  private readonly weightSum: number;
  /** ok[k]: filter k's ok verdict. Shared by every record, never mutated. */
  private readonly ok: readonly FilterVerdict[];
  /** passedPrefix[k]: the verdicts of the first k filters passing. Shared by every record, never mutated. */
  private readonly passedPrefix: readonly (readonly FilterVerdict[])[];
  private readonly maxRejected: number;

  constructor(private readonly options: PipelineOptions) {
    this.scorers = options.scorers.filter((s) => s.weight > 0);
    this.weightSum = this.scorers.reduce((a, s) => a + s.weight, 0);
    const ok = options.filters.map((f): FilterVerdict => Object.freeze({ plugin: f.name, status: 'ok' }));
    this.ok = Object.freeze(ok);
    this.passedPrefix = ok.map((_, k) => Object.freeze(ok.slice(0, k))).concat([Object.freeze(ok)]);
    this.maxRejected = options.maxRejectedInRecord ?? 32;
  }

  place(request: PlacementRequest, hosts: readonly HostSnapshot[]): PlacementRecord {
    const n = hosts.length;
    const limit = this.options.candidateLimit > 0 ? this.options.candidateLimit : n;
    const start = n > 0 ? this.nextStart % n : 0;
    const candidates: CandidateRecord[] = [];
    const rejections: Record<string, number> = {};
    let feasible = 0;
    let rejected = 0;
    let unresolvable = 0;
    let evaluated = 0;
    const filters = this.options.filters;
    for (; evaluated < n && feasible < limit; evaluated++) {
      const host = hosts[(start + evaluated) % n]!;
      let k = 0;
      let result: FilterResult | undefined;
      for (; k < filters.length; k++) {
        const r = filters[k]!.filter(request, host);
        if (r.status !== 'ok') {
          result = r;
          break;
        }
      }
      if (!result) {
        feasible++;
        candidates.push(this.scored(request, host));
        continue;
      }
      const reason = result.reason ?? filters[k]!.name;
      rejections[reason] = (rejections[reason] ?? 0) + 1;
      if (result.status === 'unresolvable') unresolvable++;
      // Only a host the record lists costs more than its first rejection.
      if (rejected++ < this.maxRejected) candidates.push(this.rejected(request, host, k, result));
    }
    this.nextStart = start + evaluated;

    const decidedAt = new Date().toISOString();
    const ranked = candidates.filter((c) => c.feasible).sort((a, b) => b.total - a.total || a.hostId.localeCompare(b.hostId));
    const winner = ranked[0];
    if (!winner) {
      return {
        workloadId: request.workloadId,
        summary: summariseRejections(n, rejections),
        candidates,
        hostsTotal: n,
        hostsEvaluated: evaluated,
        rejections,
        unresolvable: n > 0 && unresolvable === n,
        decidedAt,
      };
    }
    const runnerUp = ranked[1];
    const margin = runnerUp ? winner.total - runnerUp.total : undefined;
    const sampled = evaluated < n ? ` (evaluated ${evaluated} of ${n} hosts)` : '';
    return {
      workloadId: request.workloadId,
      hostId: winner.hostId,
      summary:
        `placed on ${winner.hostId}: score ${winner.total.toFixed(1)}` +
        (runnerUp && margin !== undefined ? `, ${margin.toFixed(1)} ahead of ${runnerUp.hostId}` : ', the only feasible host') +
        sampled,
      candidates,
      ...(runnerUp ? { runnerUp: runnerUp.hostId } : {}),
      ...(margin !== undefined ? { margin } : {}),
      hostsTotal: n,
      hostsEvaluated: evaluated,
      rejections,
      unresolvable: false,
      decidedAt,
    };
  }

  /** A listed rejected host: the verdicts up to filter k, which rejected it with `result`, and those of every filter after it. */
  private rejected(request: PlacementRequest, host: HostSnapshot, k: number, result: FilterResult): CandidateRecord {
    const all = this.options.filters;
    const filters = [...this.passedPrefix[k]!, verdictOf(all[k]!, result)];
    for (let j = k + 1; j < all.length; j++) {
      const later = all[j]!.filter(request, host);
      filters.push(later.status === 'ok' ? this.ok[j]! : verdictOf(all[j]!, later));
    }
    return { hostId: host.id, feasible: false, filters, scores: [], total: 0 };
  }

  /** A host that passed every filter, scored. */
  private scored(request: PlacementRequest, host: HostSnapshot): CandidateRecord {
    const filters = this.passedPrefix[this.options.filters.length]!;
    const scores: ScoreDetail[] = [];
    let weighted = 0;
    for (const { plugin, weight } of this.scorers) {
      const score = plugin.score(request, host);
      scores.push({ plugin: plugin.name, score, weight });
      weighted += score * weight;
    }
    return { hostId: host.id, feasible: true, filters, scores, total: this.weightSum > 0 ? weighted / this.weightSum : 0 };
  }
}

function verdictOf(filter: FilterPlugin, result: FilterResult): FilterVerdict {
  return result.reason === undefined ? { plugin: filter.name, status: result.status } : { plugin: filter.name, status: result.status, reason: result.reason };
}
