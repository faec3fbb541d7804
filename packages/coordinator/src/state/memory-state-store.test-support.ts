import { deepFreeze } from '@virtfleet/shared';
import type { RequestRecord } from '../requests/request-ledger.js';
import { isUnsettled, type Workload } from '../workloads/workload.js';
import { OPERATION_KINDS, type HostMark, type OperationKind, type StateStore, type WorkloadChangeListener, type WorkloadCursor } from '../workloads/workload-store.js';

/**
 * StateStore in memory for unit tests of the controller's logic. Every
 * write is counted and kept as the JSON it would store, so a test can say
 * "nothing was written" byte for byte.
 */
export class MemoryStateStore implements StateStore {
  readonly workloads = new Map<string, string>();
  readonly requests = new Map<string, RequestRecord>();
  readonly marks = new Map<HostMark, Set<string>>([
    ['cordon', new Set()],
    ['dead', new Set()],
  ]);
  writes = 0;
  private readonly listeners: WorkloadChangeListener[] = [];

  private read(json: string | undefined): Workload | undefined {
    return json === undefined ? undefined : deepFreeze(JSON.parse(json) as Workload);
  }
  get(id: string): Workload | undefined {
    return this.read(this.workloads.get(id));
  }
  getByRequestId(requestId: string): Workload | undefined {
    return this.list().find((w) => w.requestId === requestId);
  }
  getByName(name: string): Workload | undefined {
    return this.list().find((w) => w.spec.name === name && w.state !== 'deleted');
  }
  list(): Workload[] {
    return [...this.workloads.values()].map((json) => deepFreeze(JSON.parse(json) as Workload));
  }
  values(): Iterable<Readonly<Workload>> {
    return this.list();
  }
  unsettled(): Readonly<Workload>[] {
    return this.list().filter(isUnsettled);
  }
  listOnHost(hostId: string): Workload[] {
    return this.list().filter((w) => w.hostId === hostId);
  }
  page(match: (w: Readonly<Workload>) => boolean, after: WorkloadCursor | undefined, limit: number): { workloads: Workload[]; next?: WorkloadCursor } {
    const order = (a: WorkloadCursor, b: WorkloadCursor) => a.arrivalSeq - b.arrivalSeq || a.id.localeCompare(b.id);
    const all = this.list().filter((w) => (!after || order(w, after) > 0) && match(w)).sort(order);
    const workloads = all.slice(0, limit);
    const last = workloads.at(-1);
    return all.length > limit && last ? { workloads, next: { arrivalSeq: last.arrivalSeq, id: last.id } } : { workloads };
  }
  insert(workload: Workload): Promise<void> {
    return this.put(workload);
  }
  /** When each workload was last stored (epoch ms); tests may set it. */
  readonly storedAtMs = new Map<string, number>();
  storedSince(sinceMs: number): Workload[] {
    return this.list().filter((w) => (this.storedAtMs.get(w.id) ?? 0) >= sinceMs);
  }
  put(workload: Workload): Promise<void> {
    this.writes++;
    const before = this.get(workload.id);
    this.workloads.set(workload.id, JSON.stringify(workload));
    this.storedAtMs.set(workload.id, Date.now());
    for (const listener of this.listeners) listener(before, this.get(workload.id));
    return Promise.resolve();
  }
  remove(workloadId: string): void {
    this.writes++;
    const before = this.get(workloadId);
    this.workloads.delete(workloadId);
    if (before) for (const listener of this.listeners) listener(before, undefined);
  }
  watch(listener: WorkloadChangeListener): void {
    this.listeners.push(listener);
  }
  deletedBefore(cutoffMs: number, limit: number): Workload[] {
    return this.list().filter((w) => w.state === 'deleted' && Date.parse(w.updatedAt) < cutoffMs).slice(0, limit);
  }
  getRequest(requestId: string): RequestRecord | undefined {
    return this.requests.get(requestId);
  }
  putRequest(record: RequestRecord): Promise<void> {
    this.writes++;
    this.requests.set(record.requestId, record);
    return Promise.resolve();
  }
  requestsBefore(cutoffMs: number): RequestRecord[] {
    return [...this.requests.values()].filter((r) => r.completedAtMs < cutoffMs);
  }
  deleteRequest(requestId: string): void {
    this.writes++;
    this.requests.delete(requestId);
  }
  otherUseOf(requestId: string): string | undefined {
    const w = this.getByRequestId(requestId);
    return w ? `SubmitWorkload of ${w.id}` : undefined;
  }
  putDecision(): void {
    this.writes++;
  }
  getDecision<T>(): Promise<T | undefined> {
    return Promise.resolve(undefined);
  }
  hostsMarked(mark: HostMark): string[] {
    return [...(this.marks.get(mark) ?? [])];
  }
  setHostMark(mark: HostMark, hostId: string, on: boolean): void {
    this.writes++;
    if (on) this.marks.get(mark)?.add(hostId);
    else this.marks.get(mark)?.delete(hostId);
  }
  /** Operation records as the JSON they would store, by kind and id. */
  readonly operationRecords = new Map<OperationKind, Map<string, string>>(OPERATION_KINDS.map((k) => [k, new Map<string, string>()]));
  operations<T>(kind: OperationKind): Map<string, T> {
    return new Map([...(this.operationRecords.get(kind) ?? [])].map(([id, json]) => [id, JSON.parse(json) as T]));
  }
  putOperation(kind: OperationKind, id: string, record: unknown): Promise<void> {
    this.writes++;
    if (record === undefined) this.operationRecords.get(kind)?.delete(id);
    else this.operationRecords.get(kind)?.set(id, JSON.stringify(record));
    return Promise.resolve();
  }
  readOperation<T>(kind: OperationKind, id: string): Promise<T | undefined> {
    return Promise.resolve(this.operations<T>(kind).get(id));
  }
  setFollowing(): Promise<void> {
    return Promise.resolve();
  }
  flush(): Promise<boolean> {
    return Promise.resolve(true);
  }
  compact(): Promise<void> {
    return Promise.resolve();
  }
}
