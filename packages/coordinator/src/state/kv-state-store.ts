import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { KvWatchInclude, Kvm, type KV } from '@nats-io/kv';
import { SerialDrain, StreamPublisher, UnavailableError, deepFreeze, errorMessage, type Logger, type NatsConnection } from '@virtfleet/shared';
import { requestKey, type RequestRecord } from '../requests/request-ledger.js';
import { isUnsettled, type Workload } from '../workloads/workload.js';
import { HOST_MARKS, OPERATION_KINDS, type HostMark, type OperationKind, type StateStore, type WorkloadChangeListener, type WorkloadCursor } from '../workloads/workload-store.js';

export interface KvStateOptions {
  /** JetStream KV bucket. @default 'virtfleet_state' */
  bucket: string;
  /** Bucket replicas; 3 on a three-node NATS cluster. @default 1 */
  replicas: number;
  /** How long `insert` waits for the bucket before giving up. @default 5_000 */
  writeTimeoutMs?: number;
}

const WORKLOAD = 'workload.';
const DECISION = 'decision.';
const REQUEST = 'request.';
/** Operation records: `op.<kind>.<id>`. */
const OPERATION = 'op.';
const RETRY_MS = 500;
/** Writes sent together, at most: each batch is one pipeline of publishes, not one round trip each. */
const MAX_BATCH = 512;

interface PendingWrite {
  key: string;
  /** undefined deletes the key. */
  value: string | undefined;
  /** Settled once this write (or a later one to the same key, which replaced its value) is stored, or dropped. */
  waiters: { resolve(): void; reject(err: Error): void }[];
}

/**
 * The coordinator's state in a JetStream KV bucket: workloads (with their
 * queue position), decision records and cordoned hosts. Everything is read
 * into memory when the coordinator starts and served from there.
 *
 * Writes keep their order: `put` and friends queue a write, and one writer
 * sends what is queued as a batch, pipelined on the one NATS connection in
 * queue order (so the server stores them in that order; after a crash what
 * landed is a prefix, give or take single failed writes), and awaits the
 * batch before the next. A write to a key that already waits in the queue
 * replaces the value there instead of queueing again: the queue never holds
 * two writes of one key, so a batch's compare-and-set revisions never depend
 * on each other. Failed writes go back to the front and are retried while
 * NATS is away. `insert` (new workloads) goes straight to the bucket and
 * resolves only once stored, so an accepted request survives a crash.
 */
export class KvStateStore implements StateStore {
  private readonly workloads = new Map<string, Workload>();
  private readonly byRequest = new Map<string, string>();
  /** The live (not deleted) workload of each name. */
  private readonly byName = new Map<string, string>();
  /** Ids of the workloads `isUnsettled` holds for. */
  private readonly unsettledIds = new Set<string>();
  /** Every workload's position, in arrival order, so a page starts by binary search instead of sorting everything. */
  private readonly arrivalOrder: WorkloadCursor[] = [];
  /** Workload ids by the host they are placed on, so per-host work does not scan every workload. */
  private readonly byHost = new Map<string, Set<string>>();
  private readonly marks = new Map<HostMark, Set<string>>(HOST_MARKS.map((m) => [m, new Set<string>()]));
  private readonly operationRecords = new Map<OperationKind, Map<string, unknown>>(OPERATION_KINDS.map((k) => [k, new Map<string, unknown>()]));
  /** Completed operator requests by request id. */
  private readonly requests = new Map<string, RequestRecord>();
  /** The revision of each workload record as this store last wrote or read it: writes are compare-and-set on it. */
  private readonly revisions = new Map<string, number>();
  /** When each workload record was stored (epoch ms): JetStream's time for records read, this store's for its own writes. */
  private readonly storedAtMs = new Map<string, number>();
  /** Whether this coordinator may write now (it holds the leader lease with time to spare). */
  private mayWrite: () => boolean = () => true;
  /** Called when a write finds that another coordinator has written the same record: this one is no longer the leader. */
  private onSupplanted: (reason: string) => void = () => undefined;
  /** Keys removed (their delete marker still in the stream), with when this store saw them removed. */
  private readonly markers = new Map<string, number>();
  private readonly queue: PendingWrite[] = [];
  /** The queued (not yet sent) write of each key. */
  private readonly queuedByKey = new Map<string, PendingWrite>();
  /** Keys of the batch being sent. */
  private readonly sending = new Set<string>();
  private readonly writer = new SerialDrain(() => this.drain(), () => this.queue.length > 0 && !this.closed && !this.following);
  private closed = false;
  /** A follower mirrors the leader's writes from the bucket; the leader is the only writer. */
  private following = false;
  private watcher: { stop(): void } | undefined;
  private readonly listeners: WorkloadChangeListener[] = [];

  private constructor(
    /** The bucket; the leader lease lives in it too. */
    readonly kv: KV,
    private readonly jsm: JetStreamManager,
    private readonly bucket: string,
    private readonly log: Logger,
    private readonly writeTimeoutMs: number,
    private readonly publisher: StreamPublisher,
  ) {}

  static async open(nc: NatsConnection, options: KvStateOptions, log: Logger): Promise<KvStateStore> {
    const kv = await new Kvm(nc).create(options.bucket, { replicas: options.replicas, history: 1 });
    const writeTimeoutMs = options.writeTimeoutMs ?? 5_000;
    const store = new KvStateStore(kv, await jetstreamManager(nc), options.bucket, log, writeTimeoutMs, new StreamPublisher(nc, writeTimeoutMs));
    await store.load();
    return store;
  }

  /**
   * The bucket's keys, from the stream's subject list rather than `kv.keys()`:
   * that creates a consumer, and nats-server 2.9 may place it on a replica
   * that is down, so it times out while any node of the cluster is lost.
   * Deleted keys are listed too; their `get` says so.
   */
  private keys(): Promise<string[]> {
    return this.keysUnder('');
  }

  /** The bucket's keys that start with `prefix` (empty, or ending in a dot), listed as `keys` lists them. */
  async keysUnder(prefix: string): Promise<string[]> {
    const bucketPrefix = `$KV.${this.bucket}.`;
    const info = await this.jsm.streams.info(`KV_${this.bucket}`, { subjects_filter: `${bucketPrefix}${prefix}>` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(bucketPrefix.length));
  }

  private async load(): Promise<void> {
    const keys = await this.keys();
    await this.loadRecords(keys, WORKLOAD, 'workload', (json: Workload) => this.remember(json));
    await this.loadRecords(keys, REQUEST, 'request', (r: RequestRecord) => this.requests.set(r.requestId, r));
    for (const [kind, records] of this.operationRecords) {
      const prefix = `${OPERATION}${kind}.`;
      await this.loadRecords(keys, prefix, kind, (record: unknown, key: string) => records.set(key.slice(prefix.length), record));
    }
    for (const [mark, hosts] of this.marks) {
      const prefix = `${mark}.`;
      const entries = await Promise.all(keys.filter((k) => k.startsWith(prefix)).map((k) => this.kv.get(k)));
      for (const e of entries) if (e && e.operation === 'PUT') hosts.add(e.key.slice(prefix.length));
    }
    this.log.info({ workloads: this.workloads.size, requests: this.requests.size, cordoned: this.hostsMarked('cordon').length, confirmedDead: this.hostsMarked('dead').length }, 'state loaded');
  }

  /**
   * Fences writes by leadership: nothing is sent unless `mayWrite()` holds at
   * that moment, and every workload write is a compare-and-set on the
   * revision this store last saw, so a late write from a deposed leader
   * cannot overwrite its successor's. A failed compare-and-set drops every
   * queued write and calls `onSupplanted`.
   */
  fenceWrites(mayWrite: () => boolean, onSupplanted: (reason: string) => void): void {
    this.mayWrite = mayWrite;
    this.onSupplanted = onSupplanted;
  }

  /** Reads every live record under `prefix`, 200 at a time, and notes the removed ones' markers. */
  private async loadRecords<T>(keys: string[], prefix: string, what: string, use: (record: T, key: string) => void): Promise<void> {
    const mine = keys.filter((k) => k.startsWith(prefix));
    for (let i = 0; i < mine.length; i += 200) {
      const entries = await Promise.all(mine.slice(i, i + 200).map((k) => this.kv.get(k)));
      for (const e of entries) {
        if (!e) continue;
        if (e.operation !== 'PUT') {
          this.markers.set(e.key, Date.now());
          continue;
        }
        try {
          use(e.json<T>(), e.key);
          if (prefix === WORKLOAD) {
            this.revisions.set(e.key, e.revision);
            this.storedAtMs.set(e.key.slice(WORKLOAD.length), e.created.getTime());
          }
        } catch (err) {
          this.log.error({ key: e.key, err: errorMessage(err) }, `unreadable ${what} record; skipped`);
        }
      }
    }
  }

  get(id: string): Workload | undefined {
    return this.workloads.get(id);
  }

  getByRequestId(requestId: string): Workload | undefined {
    const id = this.byRequest.get(requestId);
    return id ? this.get(id) : undefined;
  }

  getByName(name: string): Workload | undefined {
    const id = this.byName.get(name);
    return id ? this.get(id) : undefined;
  }

  list(): Workload[] {
    return [...this.workloads.values()];
  }

  values(): Iterable<Readonly<Workload>> {
    return this.workloads.values();
  }


  unsettled(): Readonly<Workload>[] {
    return [...this.unsettledIds].flatMap((id) => this.workloads.get(id) ?? []);
  }

  listOnHost(hostId: string): Workload[] {
    return [...(this.byHost.get(hostId) ?? [])].flatMap((id) => this.get(id) ?? []);
  }

  page(match: (w: Readonly<Workload>) => boolean, after: WorkloadCursor | undefined, limit: number): { workloads: Workload[]; next?: WorkloadCursor } {
    const workloads: Workload[] = [];
    let i = after ? firstAfter(this.arrivalOrder, after) : 0;
    for (; i < this.arrivalOrder.length; i++) {
      const w = this.workloads.get(this.arrivalOrder[i]!.id);
      if (!w || !match(w)) continue;
      if (workloads.length === limit) {
        const last = workloads.at(-1)!;
        return { workloads, next: { arrivalSeq: last.arrivalSeq, id: last.id } };
      }
      workloads.push(w);
    }
    return { workloads };
  }

  deletedBefore(cutoffMs: number, limit: number): Workload[] {
    const old: Workload[] = [];
    for (const w of this.workloads.values()) {
      if (old.length >= limit) break;
      if (w.state === 'deleted' && Date.parse(w.updatedAt) < cutoffMs) old.push(w);
    }
    return old;
  }

  remove(workloadId: string): void {
    if (!this.forget(workloadId)) return;
    void this.write(WORKLOAD + workloadId, undefined).catch(() => undefined);
    void this.write(DECISION + workloadId, undefined).catch(() => undefined);
  }

  watch(listener: WorkloadChangeListener): void {
    this.listeners.push(listener);
  }

  private forget(workloadId: string): boolean {
    const w = this.workloads.get(workloadId);
    if (!w) return false;
    this.workloads.delete(workloadId);
    this.storedAtMs.delete(workloadId);
    for (const listener of this.listeners) listener(w, undefined);
    if (w.hostId) this.byHost.get(w.hostId)?.delete(workloadId);
    if (w.requestId && this.byRequest.get(w.requestId) === workloadId) this.byRequest.delete(w.requestId);
    if (this.byName.get(w.spec.name) === workloadId) this.byName.delete(w.spec.name);
    this.unsettledIds.delete(workloadId);
    this.forgetPosition(w);
    return true;
  }

  getRequest(requestId: string): RequestRecord | undefined {
    return this.requests.get(requestId);
  }

  putRequest(record: RequestRecord): Promise<void> {
    this.requests.set(record.requestId, record);
    return this.write(REQUEST + requestKey(record.requestId), JSON.stringify(record));
  }

  requestsBefore(cutoffMs: number): RequestRecord[] {
    return [...this.requests.values()].filter((r) => r.completedAtMs < cutoffMs);
  }

  deleteRequest(requestId: string): void {
    if (!this.requests.delete(requestId)) return;
    void this.write(REQUEST + requestKey(requestId), undefined).catch(() => undefined);
  }

  otherUseOf(requestId: string): string | undefined {
    const id = this.byRequest.get(requestId);
    return id ? `SubmitWorkload of ${id}` : undefined;
  }

  /**
   * Removes the delete markers of forgotten workloads, decisions and requests
   * from the stream (a marker stays one message per key otherwise), once no
   * follower can still need them.
   */
  async compact(olderThanMs: number): Promise<void> {
    const cutoff = Date.now() - olderThanMs;
    const due: string[] = [];
    const liveRequestKeys = new Set([...this.requests.keys()].map((id) => REQUEST + requestKey(id)));
    for (const [key, removedAtMs] of this.markers) {
      if (removedAtMs > cutoff || this.following || this.closed) continue;
      if (this.isLive(key, liveRequestKeys)) this.markers.delete(key);
      else due.push(key);
    }
    // Purges pipelined like writes: a sweep after a mass delete has tens of thousands.
    for (let i = 0; i < due.length && !this.following && !this.closed; i += MAX_BATCH) {
      const batch = due.slice(i, i + MAX_BATCH);
      await Promise.all(batch.map((key) => withTimeout(this.jsm.streams.purge(`KV_${this.bucket}`, { filter: `$KV.${this.bucket}.${key}` }), this.writeTimeoutMs)));
      for (const key of batch) this.markers.delete(key);
    }
  }

  /** True when the key holds something this store still uses (or is about to write). */
  private isLive(key: string, liveRequestKeys: ReadonlySet<string>): boolean {
    if (this.queuedByKey.has(key) || this.sending.has(key)) return true;
    if (key.startsWith(WORKLOAD)) return this.workloads.has(key.slice(WORKLOAD.length));
    if (key.startsWith(DECISION)) return this.workloads.has(key.slice(DECISION.length));
    if (key.startsWith(REQUEST)) return liveRequestKeys.has(key);
    if (key.startsWith(OPERATION)) {
      const [kind = '', ...id] = key.slice(OPERATION.length).split('.');
      return this.operationRecords.get(kind as OperationKind)?.has(id.join('.')) ?? true;
    }
    return true;
  }

  async insert(workload: Workload): Promise<void> {
    if (this.following || !this.mayWrite()) throw new UnavailableError('cannot store the workload: this coordinator no longer holds the leader lease');
    const key = WORKLOAD + workload.id;
    try {
      this.revisions.set(key, await this.create(key, JSON.stringify(workload)));
    } catch (err) {
      throw new UnavailableError(`cannot store the workload: state store unavailable (${errorMessage(err)})`, { cause: err });
    }
    this.remember(workload);
    this.storedAtMs.set(workload.id, Date.now());
  }

  put(workload: Workload): Promise<void> {
    this.remember(workload);
    return this.write(WORKLOAD + workload.id, JSON.stringify(workload));
  }

  storedSince(sinceMs: number): Workload[] {
    const recent: Workload[] = [];
    for (const [id, at] of this.storedAtMs) {
      const w = at >= sinceMs ? this.workloads.get(id) : undefined;
      if (w) recent.push(w);
    }
    return recent;
  }

  /** Stores a decision record (large; written only when it changes). */
  putDecision(workloadId: string, record: unknown): void {
    void this.write(DECISION + workloadId, JSON.stringify(record)).catch(() => undefined);
  }

  async getDecision<T>(workloadId: string): Promise<T | undefined> {
    const e = await this.kv.get(DECISION + workloadId);
    return e && e.operation === 'PUT' ? e.json<T>() : undefined;
  }

  hostsMarked(mark: HostMark): string[] {
    return [...(this.marks.get(mark) ?? [])];
  }

  setHostMark(mark: HostMark, hostId: string, on: boolean): void {
    const hosts = this.marks.get(mark);
    if (!hosts || hosts.has(hostId) === on) return;
    if (on) hosts.add(hostId);
    else hosts.delete(hostId);
    void this.write(`${mark}.${hostId}`, on ? '1' : undefined).catch(() => undefined);
  }

  operations<T>(kind: OperationKind): Map<string, T> {
    return (this.operationRecords.get(kind) ?? new Map<string, unknown>()) as Map<string, T>;
  }

  putOperation(kind: OperationKind, id: string, record: unknown): Promise<void> {
    const records = this.operationRecords.get(kind);
    if (record === undefined) records?.delete(id);
    else records?.set(id, record);
    return this.write(`${OPERATION}${kind}.${id}`, record === undefined ? undefined : JSON.stringify(record));
  }

  async readOperation<T>(kind: OperationKind, id: string): Promise<T | undefined> {
    const e = await this.kv.get(`${OPERATION}${kind}.${id}`);
    return e && e.operation === 'PUT' ? e.json<T>() : undefined;
  }

  /** Resolves once every queued write is stored, or after `timeoutMs`. */
  async flush(timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const pending = () => this.queue.length > 0 || this.sending.size > 0;
    while (pending() && Date.now() < deadline) await Promise.race([this.writer.running, new Promise((r) => setTimeout(r, 100))]);
    return !pending();
  }

  /**
   * Follower mode: apply every change other coordinators write, and write
   * nothing. Leader mode (false): reload everything once, then write.
   */
  async setFollowing(following: boolean): Promise<void> {
    this.following = following;
    if (following) {
      // Writes this coordinator queued as leader would overwrite the new leader's.
      this.dropQueued('no longer the leader');
      if (!this.watcher) await this.followBucket();
    }
    await this.reload();
  }

  private async followBucket(): Promise<void> {
    const updates = await this.kv.watch({ key: `${WORKLOAD}>`, include: KvWatchInclude.UpdatesOnly });
    this.watcher = updates;
    void (async () => {
      try {
        for await (const e of updates) {
          if (!this.following) continue;
          try {
            if (e.operation === 'PUT') {
              this.remember(e.json<Workload>());
              this.revisions.set(e.key, e.revision);
              this.storedAtMs.set(e.key.slice(WORKLOAD.length), e.created.getTime());
            } else {
              this.forget(e.key.slice(WORKLOAD.length));
              this.revisions.delete(e.key);
            }
          } catch (err) {
            this.log.warn({ key: e.key, err: errorMessage(err) }, 'unreadable workload update; skipped');
          }
        }
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'state watch ended; it restarts on the next switch to following');
      } finally {
        if (this.watcher === updates) this.watcher = undefined;
      }
    })();
  }

  /** Re-reads the whole bucket into memory. */
  async reload(): Promise<void> {
    for (const w of this.workloads.values()) for (const listener of this.listeners) listener(w, undefined);
    this.workloads.clear();
    this.byRequest.clear();
    this.byName.clear();
    this.unsettledIds.clear();
    this.arrivalOrder.length = 0;
    this.byHost.clear();
    this.requests.clear();
    this.markers.clear();
    this.revisions.clear();
    this.storedAtMs.clear();
    for (const hosts of this.marks.values()) hosts.clear();
    for (const records of this.operationRecords.values()) records.clear();
    await this.load();
  }

  /** Flushes what it can, then stops writing. */
  async close(timeoutMs = 5_000): Promise<void> {
    await this.flush(timeoutMs);
    this.closed = true;
    this.watcher?.stop();
    this.publisher.close();
  }

  private forgetPosition(w: WorkloadCursor): void {
    const at = firstAfter(this.arrivalOrder, w) - 1;
    if (at >= 0 && this.arrivalOrder[at]!.id === w.id) this.arrivalOrder.splice(at, 1);
  }

  private remember(w: Workload): void {
    const previous = this.workloads.get(w.id);
    if (!previous || compareArrival(previous, w) !== 0) {
      if (previous) this.forgetPosition(previous);
      this.arrivalOrder.splice(firstAfter(this.arrivalOrder, w), 0, { arrivalSeq: w.arrivalSeq, id: w.id });
    }
    const before = previous?.hostId;
    if (before && before !== w.hostId) this.byHost.get(before)?.delete(w.id);
    if (w.hostId) {
      const onHost = this.byHost.get(w.hostId) ?? new Set<string>();
      this.byHost.set(w.hostId, onHost.add(w.id));
    }
    // Frozen as given, not copied: writers build a new record for each change (spreading the old, whose frozen parts it shares).
    this.workloads.set(w.id, deepFreeze(w));
    for (const listener of this.listeners) listener(previous, w);
    if (w.requestId) this.byRequest.set(w.requestId, w.id);
    if (w.state !== 'deleted') this.byName.set(w.spec.name, w.id);
    else if (this.byName.get(w.spec.name) === w.id) this.byName.delete(w.spec.name);
    if (isUnsettled(w)) this.unsettledIds.add(w.id);
    else this.unsettledIds.delete(w.id);
  }

  private write(key: string, value: string | undefined): Promise<void> {
    if (this.following) {
      this.log.warn({ key }, 'write attempted while following; dropped');
      return Promise.reject(new UnavailableError('not the leader; write dropped'));
    }
    const stored = new Promise<void>((resolve, reject) => {
      const queued = this.queuedByKey.get(key);
      if (queued) {
        queued.value = value;
        queued.waiters.push({ resolve, reject });
        return;
      }
      const write = { key, value, waiters: [{ resolve, reject }] };
      this.queue.push(write);
      this.queuedByKey.set(key, write);
    });
    this.writer.kick();
    return stored;
  }


  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      if (!this.mayWrite()) {
        this.dropQueued('this coordinator no longer holds the leader lease');
        return;
      }
      const batch = this.queue.splice(0, MAX_BATCH);
      for (const w of batch) {
        this.queuedByKey.delete(w.key);
        this.sending.add(w.key);
      }
      const results = await Promise.allSettled(batch.map((w) => this.send(w.key, w.value)));
      this.sending.clear();
      const failed: PendingWrite[] = [];
      let supplanted: string | undefined;
      const storedAt = Date.now();
      results.forEach((result, i) => {
        const w = batch[i]!;
        if (result.status === 'fulfilled') {
          const id = w.value !== undefined && w.key.startsWith(WORKLOAD) ? w.key.slice(WORKLOAD.length) : undefined;
          if (id !== undefined && this.workloads.has(id)) this.storedAtMs.set(id, storedAt);
          w.waiters.forEach((d) => d.resolve());
        } else {
          if (isWrongRevision(result.reason) && w.key.startsWith(WORKLOAD)) supplanted ??= w.key;
          failed.push(w);
        }
      });
      if (supplanted) {
        const reason = `${supplanted} was changed by another coordinator: a newer leader has taken over`;
        this.log.error({ key: supplanted }, `state write refused: ${reason}; dropping queued writes`);
        this.requeue(failed);
        this.dropQueued(reason);
        this.onSupplanted(reason);
        return;
      }
      if (failed.length > 0) {
        const reason = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason;
        this.log.warn({ failed: failed.length, first: failed[0]!.key, pending: this.queue.length, err: errorMessage(reason) }, 'state writes failed; retrying');
        this.requeue(failed);
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  /** Puts failed writes back at the front, in their order; a newer write of the same key queued meanwhile wins. */
  private requeue(failed: PendingWrite[]): void {
    const back: PendingWrite[] = [];
    for (const w of failed) {
      const newer = this.queuedByKey.get(w.key);
      if (newer) newer.waiters.unshift(...w.waiters);
      else {
        back.push(w);
        this.queuedByKey.set(w.key, w);
      }
    }
    this.queue.unshift(...back);
  }

  /**
   * One write; workload records go by compare-and-set on their last known
   * revision. Straight to the bucket's subject through the pipelined
   * publisher, with the headers the KV client would set.
   */
  private async send(key: string, value: string | undefined): Promise<void> {
    const fenced = key.startsWith(WORKLOAD);
    const revision = this.revisions.get(key);
    if (value === undefined) {
      await this.publisher.publish(this.subjectOf(key), '', {
        headers: { 'KV-Operation': 'DEL' },
        ...(fenced && revision !== undefined ? { expectLastSubjectSequence: revision } : {}),
      });
      this.revisions.delete(key);
      this.markers.set(key, Date.now());
    } else if (!fenced) {
      await this.publisher.publish(this.subjectOf(key), value);
    } else {
      this.revisions.set(key, revision === undefined ? await this.create(key, value) : (await this.publisher.publish(this.subjectOf(key), value, { expectLastSubjectSequence: revision })).seq);
    }
  }

  /** Stores a key that holds nothing yet; one whose last entry is a delete marker goes through the KV client's create, which allows that. */
  private async create(key: string, value: string): Promise<number> {
    try {
      return (await this.publisher.publish(this.subjectOf(key), value, { expectLastSubjectSequence: 0 })).seq;
    } catch (err) {
      if (!isWrongRevision(err)) throw err;
      return withTimeout(this.kv.create(key, value), this.writeTimeoutMs);
    }
  }

  private subjectOf(key: string): string {
    return `$KV.${this.bucket}.${key}`;
  }

  private dropQueued(reason: string): void {
    const dropped = this.queue.splice(0);
    this.queuedByKey.clear();
    if (dropped.length > 0) this.log.warn({ dropped: dropped.length, reason }, 'queued state writes dropped');
    for (const w of dropped) for (const d of w.waiters) d.reject(new UnavailableError(`write dropped: ${reason}`));
  }
}

function isWrongRevision(err: unknown): boolean {
  return /wrong last sequence|key exists/i.test(errorMessage(err));
}

/** The index of the first position after `cursor` in `order` (sorted by arrival). */
function firstAfter(order: readonly WorkloadCursor[], cursor: WorkloadCursor): number {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareArrival(order[mid]!, cursor) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function compareArrival(a: WorkloadCursor, b: WorkloadCursor): number {
  return a.arrivalSeq - b.arrivalSeq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      },
    );
  });
}
