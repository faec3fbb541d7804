import type { Telemetry, WorkloadTelemetry } from './telemetry.js';

/**
 * NATS header on every telemetry message saying whether its workload part is
 * the whole list (`full`) or the changes since the previous message
 * (`delta`). A receiver that falls behind may drop a host's queued messages
 * when a full one arrives, without parsing them. Absent: full.
 */
export const TELEMETRY_KIND_HEADER = 'Virtfleet-Telemetry';
export type TelemetryKind = 'full' | 'delta';

/** The workload part of a telemetry message. */
export type WorkloadListPart = Pick<Telemetry, 'workloads' | 'workloads_base_seq' | 'workloads_removed'>;

/** A workload's usage moves by at least this much (CPU percentage points) before a delta carries it. */
const CPU_STEP_PERCENT = 1;
/** ...or its memory by this fraction of what was last sent (and at least 1 MiB). */
const MEMORY_STEP_FRACTION = 0.02;

function changedEnough(sent: WorkloadTelemetry, now: WorkloadTelemetry): boolean {
  return (
    sent.state !== now.state ||
    sent.driver_ref !== now.driver_ref ||
    (sent.addresses ?? []).join(',') !== (now.addresses ?? []).join(',') ||
    sent.name !== now.name ||
    sent.kind !== now.kind ||
    sent.driver !== now.driver ||
    Math.abs(sent.cpu_percent - now.cpu_percent) >= CPU_STEP_PERCENT ||
    Math.abs(sent.memory_used_mib - now.memory_used_mib) >= Math.max(1, sent.memory_used_mib * MEMORY_STEP_FRACTION)
  );
}

/**
 * The agent's side: turns each sample of the host's workloads into the
 * workload part of the next message. The whole list goes out first and then
 * at least every `fullEveryMs`; in between, only workloads that are new, or
 * whose state, identity or usage changed (usage by a step), and the ids that
 * went away, relative to the previous message (`workloads_base_seq`). A
 * fleet whose workloads sit still then sends a few bytes per host per
 * interval instead of every workload, and a receiver that missed a message
 * is whole again at the next full list.
 */
export class WorkloadDeltaEncoder {
  /** Each workload as the receiver has it: the values last sent. */
  private readonly sent = new Map<string, WorkloadTelemetry>();
  private previousSeq: number | undefined;
  private lastFullMs = -Infinity;

  constructor(
    private readonly fullEveryMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The workload part of message `seq`, built from the host's whole list now; the encoder takes it as sent. */
  encode(seq: number, workloads: readonly WorkloadTelemetry[]): { part: WorkloadListPart; kind: TelemetryKind } {
    const now = this.now();
    const base = this.previousSeq;
    this.previousSeq = seq;
    if (base === undefined || now - this.lastFullMs >= this.fullEveryMs) {
      this.lastFullMs = now;
      this.sent.clear();
      for (const w of workloads) this.sent.set(w.workload_id, w);
      return { part: { workloads: [...workloads] }, kind: 'full' };
    }
    const changed: WorkloadTelemetry[] = [];
    const present = new Set<string>();
    for (const w of workloads) {
      present.add(w.workload_id);
      const sent = this.sent.get(w.workload_id);
      if (sent && !changedEnough(sent, w)) continue;
      changed.push(w);
      this.sent.set(w.workload_id, w);
    }
    const removed: string[] = [];
    for (const id of this.sent.keys()) if (!present.has(id)) removed.push(id);
    for (const id of removed) this.sent.delete(id);
    return { part: { workloads: changed, workloads_base_seq: base, workloads_removed: removed }, kind: 'delta' };
  }

  /** The message last encoded was not sent: the next one is a full list. */
  reset(): void {
    this.previousSeq = undefined;
    this.sent.clear();
  }
}

/**
 * The receiver's side: one host's workloads as its telemetry describes them,
 * rebuilt from full lists and the deltas after them. `complete` says whether
 * the view is the host's whole list as of the last message applied: true
 * after a full list and after each delta that follows on the message before
 * it (same agent run, `workloads_base_seq` equal to the last seq applied);
 * false after a gap, until the next full list.
 */
export class WorkloadView {
  private readonly byId = new Map<string, WorkloadTelemetry>();
  private bootId: string | undefined;
  private seq: number | undefined;
  complete = false;

  /** Applies one validated message and returns the workloads it carries: all of them for a full list, the changed ones for a delta. */
  apply(t: Pick<Telemetry, 'boot_id' | 'seq'> & WorkloadListPart): readonly WorkloadTelemetry[] {
    if (t.workloads_base_seq === undefined) {
      this.byId.clear();
      this.complete = true;
    } else {
      this.complete = this.complete && this.bootId === t.boot_id && this.seq === t.workloads_base_seq;
      for (const id of t.workloads_removed ?? []) this.byId.delete(id);
    }
    for (const w of t.workloads) this.byId.set(w.workload_id, w);
    this.bootId = t.boot_id;
    this.seq = t.seq;
    return t.workloads;
  }

  get(id: string): WorkloadTelemetry | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<WorkloadTelemetry> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }
}
