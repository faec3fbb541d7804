import { engineNetworkName, FailedPreconditionError, SPEC_NETWORK_NONE, UnavailableError, type CatalogRef, type DriverInfo, type LogChunk, type Logger, type LogRequest, type WorkloadKind, type WorkloadSpec, type WorkloadState } from '@virtfleet/shared';
import type { ImageLease } from '../images/image-cache.js';

export type { ImageLease } from '../images/image-cache.js';

/** The host's image cache, as drivers use it (see ImageCache). */
export interface ImageProvider {
  /** The image, fetched from the catalog if this host lacks it, held until the lease is released. */
  acquire(ref: CatalogRef): Promise<ImageLease>;
  /** Holds an image this host has, by digest, without the catalog; undefined when it lacks it. */
  hold(digest: string): ImageLease | undefined;
}

/** What a driver found when probing its backend. */
export interface DriverFingerprint extends DriverInfo {
  /** What the backend itself says the host offers, if it knows. */
  capacity?: { vcpus: number; memoryMiB: number };
}

/** One workload as the backend sees it. */
export interface DriverWorkload {
  workloadId: string;
  name: string;
  kind: WorkloadKind;
  /** Mapped onto virtfleet's states: running, paused, stopped, failed, creating. */
  state: WorkloadState;
  /** The backend's handle: Docker container id, libvirt domain UUID. */
  ref: string;
  message?: string;
  /** A container that exited: its exit code, which tells on-failure restarts from clean exits. */
  exitCode?: number;
  /** IP addresses on the host's networks, when it has any. */
  addresses?: string[];
}

/** Cumulative counters; telemetry turns successive samples into rates. */
export interface WorkloadUsage {
  /** CPU time consumed since the workload started, in nanoseconds. */
  cpuTimeNs: number;
  memoryUsedMiB: number;
}

export interface StopOptions {
  /** Seconds to wait for a graceful shutdown before forcing it. */
  timeoutSeconds: number;
  /** Skip the graceful shutdown. */
  force: boolean;
}

/** Everything a driver factory receives. */
export interface DriverContext {
  /** The agent's host id. A driver touches only workloads tagged with it. */
  hostId: string;
  log: Logger;
  /** The agent's state directory; drivers that keep files (libvirt: disks) keep them under it unless configured elsewhere. */
  stateDir?: string;
  /** Catalog images. Absent on simulated hosts, whose workloads use none. */
  images?: ImageProvider;
  /** The host network workloads may join (`spec.network`), once `ready`. Absent when the agent sets none up. */
  network?: { readonly name: string; readonly ready: boolean; readonly netns?: string | undefined };
}

/**
 * The engine network a spec's `network` joins: undefined for none or unset
 * (the driver's own default applies to unset), else the host network's name
 * in libvirt and Docker.
 * @throws FailedPreconditionError when the spec names a network this host does not offer (now)
 */
export function engineNetworkOf(spec: Pick<WorkloadSpec, 'network'>, network: DriverContext['network']): string | undefined {
  if (spec.network === undefined || spec.network === SPEC_NETWORK_NONE) return undefined;
  if (network?.name !== spec.network) throw new FailedPreconditionError(`this host has no network ${spec.network}${network ? ` (it has ${network.name})` : ''}`);
  if (!network.ready) throw new UnavailableError(`network ${spec.network} is not set up on this host yet`);
  return engineNetworkName(spec.network);
}

/**
 * A Driver runs one kind of workload on one backend (Docker Engine, libvirt).
 *
 * Ownership: a driver sees and touches only workloads it tagged with its
 * host id (Docker labels, libvirt domain metadata), so several agents can share
 * one backend.
 *
 * Errors: NotFoundError when the workload does not exist or belongs to another
 * host; FailedPreconditionError for a transition the current state forbids
 * (pausing a stopped workload); UnavailableError when the backend cannot be
 * reached; InvalidArgumentError when the spec cannot run here (image missing).
 * Every method that changes state is idempotent: asking for the state a
 * workload already has succeeds without doing anything.
 */
export interface Driver {
  readonly name: string;
  readonly kinds: readonly WorkloadKind[];

  /** Probes the backend. Never throws: an unreachable backend reports `healthy: false` with the reason in `detail`. */
  fingerprint(): Promise<DriverFingerprint>;

  /**
   * Creates the workload and starts it. Idempotent by workload id: if this host
   * already owns a workload with that id (say, created before a crash), it is
   * returned as it is and nothing new is created.
   */
  create(workloadId: string, spec: WorkloadSpec): Promise<DriverWorkload>;
  /** Starts a stopped workload; running or paused ones are returned as they are. */
  start(workloadId: string): Promise<DriverWorkload>;
  /** Stops gracefully, forcing after `timeoutSeconds`. Stopping a stopped workload succeeds. */
  stop(workloadId: string, options: StopOptions): Promise<DriverWorkload>;
  /** Freezes a running workload. Pausing a paused one succeeds; a stopped one fails with FailedPreconditionError. */
  pause(workloadId: string): Promise<DriverWorkload>;
  /** Thaws a paused workload. Resuming a running one succeeds; a stopped one fails with FailedPreconditionError. */
  resume(workloadId: string): Promise<DriverWorkload>;
  /** Removes the workload whatever its state. Deleting an absent workload succeeds. */
  delete(workloadId: string): Promise<void>;

  /** The workload's current state, or undefined if this host does not own it. */
  inspect(workloadId: string): Promise<DriverWorkload | undefined>;
  /** Every workload this host owns on this backend. */
  list(): Promise<DriverWorkload[]>;
  /** Usage counters, or undefined when the workload is not running or absent. */
  usage(workloadId: string): Promise<WorkloadUsage | undefined>;

  /**
   * The workload's output (container stdout and stderr, VM serial console),
   * as kept by the backend after it stops too. Ends at the end of the log;
   * with `follow`, when `signal` aborts or the workload is deleted. Drivers
   * without logs (the fake one) leave it out.
   * @throws NotFoundError when this host does not own the workload
   * @throws InvalidArgumentError for an option the backend cannot honour
   */
  logs?(workloadId: string, request: LogRequest, signal: AbortSignal): AsyncIterable<LogChunk>;

  /** Live migration between hosts of this driver; absent when the backend cannot migrate. */
  readonly migration?: LiveMigration;
  /** A stopped workload's state as files and back (cold migration); absent when the backend cannot. */
  readonly stateTransfer?: WorkloadStateTransfer;

  /** Releases connections. Leaves workloads running. */
  close(): Promise<void>;
}

/** Where a migrating workload's files are on the target, by role: `disk:NAME`, `kernel`, `initrd`, `seed`, `console-log`. */
export type MigrationFiles = Record<string, string>;

/** What the target tells the source: how to reach it and where the workload's files are. */
export interface IncomingMigration {
  hostId: string;
  /** The target's hypervisor as the source's reaches it (libvirt peer to peer). */
  hypervisorUri: string;
  /** Where the memory stream and disk copy go, such as tcp://10.251.0.3. */
  transferUri: string;
  files: MigrationFiles;
  /** The workload's backend name on the target. */
  backendName: string;
}

export interface MigrationOptions {
  /** 0 or absent: the backend's default. */
  maxDowntimeMs?: number;
  /** MiB/s; 0 or absent: unlimited. */
  bandwidthMiBs?: number;
}

export interface MigrationProgressReport {
  phase: 'transferring' | 'switching' | 'completed';
  dataTotalBytes: number;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  bytesPerSecond: number;
  downtimeMs: number;
  elapsedMs: number;
}

/**
 * Moving a running workload to another host of the same backend while it
 * runs. The target prepares first (files, no domain), then the source
 * migrates. Exactly one copy runs at any moment: the backend switches over
 * atomically, and a failed or aborted migration leaves the workload running
 * on the source and nothing running on the target.
 */
export interface LiveMigration {
  /**
   * On the target: makes the workload's files (disks empty or on the cached
   * image, the seed) without defining or starting it. Idempotent.
   * @throws InvalidArgumentError / ResourceExhaustedError as create does
   */
  prepareIncoming(workloadId: string, spec: WorkloadSpec): Promise<IncomingMigration>;
  /**
   * On the source: moves the running or paused workload to `target` and
   * resolves once it runs there and nothing of it is left here (its files
   * removed). Progress is reported about every second.
   * @throws NotFoundError when this host does not own it
   * @throws AbortedError when abortMigration stopped it; it still runs here
   */
  migrateOut(workloadId: string, target: IncomingMigration, options: MigrationOptions, onProgress: (p: MigrationProgressReport) => void): Promise<void>;
  /**
   * On the source: aborts the migration under way.
   * @throws FailedPreconditionError when none is under way
   */
  abortMigration(workloadId: string): Promise<void>;
  /**
   * On the target: removes what prepareIncoming made.
   * @throws FailedPreconditionError when the workload exists here (the migration finished)
   */
  discardIncoming(workloadId: string): Promise<void>;
}

/** An exported workload state: its files by role (`disk:NAME`, `image`), and what to do once they are sent. */
export interface ExportedState {
  files: Record<string, string>;
  /** Removes what the export made (never the workload's own files). */
  release(): Promise<void>;
}

/** What a state export or snapshot carries besides the disks or image. */
export interface StateOptions {
  /**
   * A running VM's memory too (role `memory`): the VM is saved (it stops for
   * the time that takes) and, once made again elsewhere, resumes where it
   * was instead of booting.
   */
  memory?: boolean;
}

/**
 * A workload's state as files, to make it again on another host of the same
 * backend (cold migration, backup and restore): a VM's own disks and, when
 * asked for, its memory; a container's writable layer committed to an image
 * archive (its volumes are not carried).
 */
export interface WorkloadStateTransfer {
  /**
   * On the source: the state of the workload, in files under `dir` (an
   * empty directory the caller removes afterwards) or its own files. A
   * running VM whose memory is asked for is saved first and stays stopped
   * (start resumes it); anything else must be stopped.
   * @throws NotFoundError when this host does not own it
   * @throws FailedPreconditionError when it runs and its memory is not asked for or cannot be saved
   */
  exportState(workloadId: string, dir: string, options?: StateOptions): Promise<ExportedState>;
  /**
   * On the target: makes the workload from exported files, stopped (start it
   * with start; with a `memory` file, start resumes it). The files are the
   * caller's; they may be moved away. An own copy that exists already is
   * returned as it is.
   * @throws InvalidArgumentError when the files do not fit the spec (a missing or unknown role)
   */
  importState(workloadId: string, spec: WorkloadSpec, files: Record<string, string>): Promise<DriverWorkload>;
  /**
   * The workload's state as it is at this instant, in the roles exportState
   * uses, while it goes on running: a running VM's disks crash-consistent
   * (as after a power cut), or with its memory when asked for (the VM is
   * saved and resumed, so it pauses meanwhile); a container's writable layer
   * committed.
   * @throws NotFoundError when this host does not own it
   * @throws FailedPreconditionError when memory is asked for and the workload cannot give it (a container, a stopped VM)
   */
  snapshotState(workloadId: string, dir: string, options?: StateOptions): Promise<ExportedState>;
}

/** Builds a driver from its config section. Registered by name in catalog.ts. */
export type DriverFactory<Config> = (config: Config, context: DriverContext) => Promise<Driver>;

/** Resource name used in NotFoundError messages. */
export const WORKLOAD_RESOURCE = 'workload';

/**
 * Name of the container or domain that holds a host's copy of a workload.
 * The host id is part of it because a rescheduled workload gets a second copy
 * on another host, and hosts may share a backend. Neither id contains ".", so
 * the pair is unambiguous.
 */
export function backendName(hostId: string, workloadId: string): string {
  return `virtfleet-${hostId}.${workloadId}`;
}
