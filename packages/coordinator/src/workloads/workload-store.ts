import type { RequestStore } from '../requests/request-ledger.js';
import type { Workload } from './workload.js';

/**
 * Where the coordinator keeps workloads. Reads come from memory and return
 * the stored records, frozen: callers change a workload only by passing a
 * new record to `insert` or `put`.
 */
export interface WorkloadStore {
  get(id: string): Workload | undefined;
  /** The workload submitted with this request id, if any. */
  getByRequestId(requestId: string): Workload | undefined;
  /** The live (not deleted) workload with this name, if any. */
  getByName(name: string): Workload | undefined;
  /** All workloads, oldest first. */
  list(): Workload[];
  /** Every workload, for scans: no array is built. */
  values(): Iterable<Readonly<Workload>>;
  /**
   * Placed workloads still owed an agent command: a create not answered yet (`creating`) or an accepted delete
   * not carried out yet. Cheap however many workloads are settled.
   */
  unsettled(): Readonly<Workload>[];
  /** The workloads placed on a host, in any state (deleted ones included). */
  listOnHost(hostId: string): Workload[];
  /**
   * One page of the workloads that `match`, oldest first (by arrival), from
   * just after `after`. `next` is set when more follow.
   */
  page(match: (w: Readonly<Workload>) => boolean, after: WorkloadCursor | undefined, limit: number): { workloads: Workload[]; next?: WorkloadCursor };
  /**
   * Adds a new workload and resolves once it is durable.
   * @throws UnavailableError when it could not be stored; nothing changed then.
   */
  insert(workload: Workload): Promise<void>;
  /**
   * Replaces a workload in memory at once; the returned promise settles when
   * the change is durable (writes land in order). Callers that must not act
   * before it is stored await it; others may ignore it.
   */
  put(workload: Workload): Promise<void>;
  /** Forgets a workload and its decision record for good (a deleted workload past its retention). */
  remove(workloadId: string): void;
  /** Deleted workloads last changed before `cutoffMs`, at most `limit`. */
  deletedBefore(cutoffMs: number, limit: number): Workload[];
  /**
   * Workloads whose record was stored at `sinceMs` (epoch ms) or later, by
   * the store's own clock as far as it tells (JetStream's stored time).
   */
  storedSince(sinceMs: number): Workload[];
  /**
   * Calls `listener` with every change of a workload record in memory,
   * whoever made it (this coordinator, the leader it follows, a reload),
   * as the record before and after; undefined where there is none.
   */
  watch(listener: WorkloadChangeListener): void;
}

export type WorkloadChangeListener = (before: Readonly<Workload> | undefined, after: Readonly<Workload> | undefined) => void;

/** A position in arrival order, for paging. */
export interface WorkloadCursor {
  arrivalSeq: number;
  id: string;
}

/** Durable marks an operator puts on hosts. */
export const HOST_MARKS = ['cordon', 'dead'] as const;
export type HostMark = (typeof HOST_MARKS)[number];

/** Long operations whose durable record is kept by id beside the workloads (a host drain, by host id). */
export const OPERATION_KINDS = ['drain', 'leftover'] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

/** The workload store plus the rest of the coordinator's durable state. */
export interface StateStore extends WorkloadStore, RequestStore {
  /** Stores the latest decision record of a workload. */
  putDecision(workloadId: string, record: unknown): void;
  getDecision<T>(workloadId: string): Promise<T | undefined>;
  /** Hosts carrying an operator's mark: cordoned, or confirmed dead. */
  hostsMarked(mark: HostMark): string[];
  setHostMark(mark: HostMark, hostId: string, on: boolean): void;
  /** The records of one kind of operation by id, as loaded when this coordinator last reloaded and written by it since. */
  operations<T>(kind: OperationKind): Map<string, T>;
  /** Stores an operation record; undefined removes it. Writes keep their order; resolves once durable. */
  putOperation(kind: OperationKind, id: string, record: unknown): Promise<void>;
  /** The record as the bucket holds it now, for followers, which do not mirror operation records. */
  readOperation<T>(kind: OperationKind, id: string): Promise<T | undefined>;
  /** Follow other coordinators' writes (true), or reload and become the writer (false). */
  setFollowing(following: boolean): Promise<void>;
  /** Resolves true once every write so far is durable, false after `timeoutMs`. */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Drops the markers that removed keys leave behind, once older than `olderThanMs`. Best effort. */
  compact(olderThanMs: number): Promise<void>;
}
