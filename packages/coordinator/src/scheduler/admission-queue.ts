import { InvalidArgumentError, expectedRuntimeSeconds, type WorkloadSpec } from '@virtfleet/shared';
import { QUEUE_POLICIES, QUEUE_SORTS, type QueuePolicy } from './catalog.js';
import type { QueuedRequest, QueueSortPlugin } from './plugins.js';
import { assume, type HostSnapshot, type PlacementRecord, type Scheduler } from './scheduler.js';

export interface AdmissionQueueOptions {
  /** @default 'fcfs' */
  policy: QueuePolicy;
  /** Priority points gained per minute of waiting, under the priority policy. @default 1 */
  agingPerMinute: number;
  /**
   * What happens when the request at the head does not fit. true: later
   * requests that fit are placed past it (backfilling). false: strict order,
   * nothing behind a blocked head is placed until it is. @default true
   */
  backfill: boolean;
}

export interface QueueEntry extends QueuedRequest {
  spec: WorkloadSpec;
  /** Hosts the request must not be placed on (PlacementRequest.avoidHosts). */
  avoidHosts?: readonly string[];
}

export interface PassResult {
  placed: { entry: QueueEntry; record: PlacementRecord }[];
  /** Requests tried and not placed, with the record that says why. */
  waiting: { entry: QueueEntry; record: PlacementRecord }[];
  /** Requests not tried because a strict queue stopped at a blocked head. */
  blockedBehind?: string;
}

/**
 * Pending requests in the order of the active policy. The policy can be
 * changed at any time; the next pass uses the new order.
 */
export class AdmissionQueue {
  private readonly entries = new Map<string, QueueEntry>();
  private nextSeq = 0;
  private sort: QueueSortPlugin;

  constructor(private options: AdmissionQueueOptions) {
    this.sort = AdmissionQueue.sortFor(options);
  }

  static sortFor(options: Pick<AdmissionQueueOptions, 'policy' | 'agingPerMinute'>): QueueSortPlugin {
    const factory = QUEUE_SORTS.get(options.policy);
    if (!factory) throw new InvalidArgumentError('policy', `must be one of ${QUEUE_POLICIES.join(', ')}`);
    return factory(options);
  }

  get policy(): QueuePolicy {
    return this.options.policy;
  }

  get backfill(): boolean {
    return this.options.backfill;
  }

  get agingPerMinute(): number {
    return this.options.agingPerMinute;
  }

  get size(): number {
    return this.entries.size;
  }

  /** @throws InvalidArgumentError for an unknown policy; the queue is unchanged then. */
  configure(change: Partial<AdmissionQueueOptions>): void {
    const next = { ...this.options, ...change };
    this.sort = AdmissionQueue.sortFor(next);
    this.options = next;
  }

  /** Enqueues a request; a request already queued keeps its place. `avoidHosts`: hosts it must not be placed on. */
  add(workloadId: string, spec: WorkloadSpec, arrivalMs: number, arrivalSeq?: number, avoidHosts?: readonly string[]): QueueEntry {
    const existing = this.entries.get(workloadId);
    if (existing) return existing;
    const seq = arrivalSeq ?? this.nextSeq;
    this.nextSeq = Math.max(this.nextSeq, seq + 1);
    const entry: QueueEntry = { workloadId, spec, priority: spec.priority, expectedRuntimeSeconds: expectedRuntimeSeconds(spec), arrivalSeq: seq, arrivalMs };
    if (avoidHosts?.length) entry.avoidHosts = avoidHosts;
    this.entries.set(workloadId, entry);
    return entry;
  }

  /** Empties the queue (a coordinator that stops leading hands it to the next leader). */
  clear(): void {
    this.entries.clear();
  }

  remove(workloadId: string): boolean {
    return this.entries.delete(workloadId);
  }

  has(workloadId: string): boolean {
    return this.entries.has(workloadId);
  }

  /** Entries in policy order at `nowMs`. */
  ordered(nowMs: number): QueueEntry[] {
    const less = this.sort.less;
    return [...this.entries.values()].sort((a, b) => (less(a, b, nowMs) ? -1 : less(b, a, nowMs) ? 1 : 0));
  }

  /**
   * Tries the queue in order against `hosts`, booking each placement on the
   * snapshots (`assume`) before trying the next request, and removes placed
   * requests. The caller carries out the placements.
   */
  pass(scheduler: Scheduler, hosts: HostSnapshot[], nowMs: number): PassResult {
    const byId = new Map(hosts.map((h) => [h.id, h]));
    const result: PassResult = { placed: [], waiting: [] };
    for (const entry of this.ordered(nowMs)) {
      const record = scheduler.place({ workloadId: entry.workloadId, spec: entry.spec, ...(entry.avoidHosts ? { avoidHosts: entry.avoidHosts } : {}) }, hosts);
      const host = record.hostId === undefined ? undefined : byId.get(record.hostId);
      if (host) {
        assume(host, entry.spec);
        this.entries.delete(entry.workloadId);
        result.placed.push({ entry, record });
        continue;
      }
      result.waiting.push({ entry, record });
      if (!this.options.backfill) {
        result.blockedBehind = entry.workloadId;
        break;
      }
    }
    return result;
  }
}
