import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import Docker from 'dockerode';
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  VirtfleetError,
  demuxDockerLog,
  errorMessage,
  parseCatalogRef,
  SPEC_NETWORK_NONE,
  type LogChunk,
  type PublishedPort,
  type LogRequest,
  type Logger,
  type WorkloadKind,
  type WorkloadSpec,
  type WorkloadState,
} from '@virtfleet/shared';
import {
  WORKLOAD_RESOURCE,
  backendName,
  type Driver,
  type DriverContext,
  type DriverFactory,
  type DriverFingerprint,
  type DriverWorkload,
  engineNetworkOf,
  type ImageLease,
  type ImageProvider,
  type ExportedState,
  type StateOptions,
  type StopOptions,
  type WorkloadStateTransfer,
  type WorkloadUsage,
} from '../driver.js';

/** Docker's PortBindings: each workload port to its host port on every host address. */
function portBindings(ports: readonly PublishedPort[]): Record<string, { HostPort: string }[]> {
  const bindings: Record<string, { HostPort: string }[]> = {};
  for (const p of ports) (bindings[`${p.port}/${p.protocol}`] ??= []).push({ HostPort: String(p.host_port) });
  return bindings;
}

/** Docker's json-file log of each container: at most this big per file, and this many files. */
const CONTAINER_LOG_MAX_SIZE = '10m';
const CONTAINER_LOG_FILES = '3';

/** The repository catalog images are loaded under, tagged by content digest, so a load happens once per host. */
export const CATALOG_REPOSITORY = 'virtfleet-catalog';
export const catalogImageTag = (digest: string): string => `${CATALOG_REPOSITORY}:${digest.replace(/^sha256:/, '')}`;
const LOADED = /^Loaded image(?: ID)?: (\S+)\s*$/m;
/** Where a container's imported state is tagged, per workload: `virtfleet-state:<workload id>`. */
const STATE_IMAGE_REPO = 'virtfleet-state';

export const DOCKER_DRIVER_NAME = 'docker';

export interface DockerDriverConfig {
  /** Unix socket of the Docker Engine API. @default '/var/run/docker.sock' */
  socketPath: string;
  /** NetworkMode of every container: 'none', 'host' or a network name. @default 'none' */
  network: string;
  /**
   * Grace period Docker itself uses when it stops a container without being
   * asked by us (daemon shutdown, a manual `docker stop`). Our own stop() uses
   * StopOptions.timeoutSeconds. @default 10
   */
  stopTimeoutSeconds: number;
}

const DEFAULT_CONFIG: DockerDriverConfig = { socketPath: '/var/run/docker.sock', network: 'none', stopTimeoutSeconds: 10 };

/** Label keys the driver writes on every container it creates. */
export const DOCKER_LABELS = {
  host: 'io.virtfleet.host',
  workload: 'io.virtfleet.workload',
  name: 'io.virtfleet.name',
  kind: 'io.virtfleet.kind',
  /** Prefix of the spec's own labels: `io.virtfleet.label.<key>`. */
  userPrefix: 'io.virtfleet.label.',
} as const;

const KIND: WorkloadKind = 'container';
const MIB = 1024 * 1024;
const DETAIL_MAX = 1024; // driverInfoSchema's limit on `detail`
// How long a create waits for a concurrent create of the same name to become visible.
const NAME_RACE_TIMEOUT_MS = 5_000;
const NAME_RACE_POLL_MS = 50;

/** Builds the labels that tag a container as workload `workloadId` of host `hostId`. */
export function buildLabels(hostId: string, workloadId: string, spec: Pick<WorkloadSpec, 'name' | 'labels'>): Record<string, string> {
  const labels: Record<string, string> = {};
  // User labels first so that they can never overwrite the ownership labels.
  for (const [key, value] of Object.entries(spec.labels)) labels[DOCKER_LABELS.userPrefix + key] = value;
  labels[DOCKER_LABELS.host] = hostId;
  labels[DOCKER_LABELS.workload] = workloadId;
  labels[DOCKER_LABELS.name] = spec.name;
  labels[DOCKER_LABELS.kind] = KIND;
  return labels;
}

/** True when `labels` mark the container as workload `workloadId` owned by host `hostId`. */
export function isOwnedBy(labels: Record<string, string> | null | undefined, hostId: string, workloadId: string): boolean {
  return labels?.[DOCKER_LABELS.host] === hostId && labels[DOCKER_LABELS.workload] === workloadId;
}

/** The parts of Docker's container state the mapping reads; `docker inspect`'s State or `{ Status }` from a list. */
export interface DockerStateLike {
  /** created, running, paused, restarting, removing, exited or dead. */
  Status: string;
  Paused?: boolean;
}

/**
 * Maps Docker's container state onto virtfleet's.
 *
 * running → running (paused when the Paused flag is set), paused → paused,
 * restarting → running (Docker is bringing it back by itself),
 * created, exited, removing → stopped, dead → failed, anything else → unknown.
 *
 * Exit codes are deliberately ignored: a container stopped by us exits with
 * 137 or 143 as well, so a non-zero code does not tell failure from stop.
 * Details such as the exit code or an OOM kill go to DriverWorkload.message.
 */
export function dockerStateToWorkloadState(state: DockerStateLike): WorkloadState {
  switch (state.Status) {
    case 'running':
      return state.Paused ? 'paused' : 'running';
    case 'paused':
      return 'paused';
    case 'restarting':
      return 'running';
    case 'created':
    case 'exited':
    case 'removing':
      return 'stopped';
    case 'dead':
      return 'failed';
    default:
      return 'unknown';
  }
}

/** What dockerode (docker-modem) rejects with: an HTTP answer or a socket error. */
interface DockerodeError {
  statusCode?: number;
  code?: string;
  json?: unknown;
  message?: string;
}

// Socket errors that mean the daemon is down, restarting or not installed.
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EACCES']);

/** Docker's own message, without docker-modem's "(HTTP code 409) unexpected - " prefix. */
export function dockerMessage(err: unknown): string {
  const json = (err as DockerodeError | null)?.json;
  if (typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message;
  }
  return errorMessage(err).trim();
}

function statusCodeOf(err: unknown): number | undefined {
  const code = (err as DockerodeError | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Turns whatever dockerode threw into a virtfleet error: socket failures →
 * UnavailableError, HTTP 404 → NotFoundError for the workload, any other
 * answer → InternalError carrying Docker's message. Virtfleet errors pass through.
 */
export function mapDockerError(err: unknown, workloadId: string): VirtfleetError {
  if (err instanceof VirtfleetError) return err;
  const code = (err as DockerodeError | null)?.code;
  if (statusCodeOf(err) === undefined && typeof code === 'string' && UNREACHABLE_CODES.has(code)) {
    return new UnavailableError(`Docker Engine unreachable: ${errorMessage(err)}`, { cause: err });
  }
  if (statusCodeOf(err) === 404) return new NotFoundError(WORKLOAD_RESOURCE, workloadId, { cause: err });
  return new InternalError(`Docker Engine: ${dockerMessage(err)}`, { cause: err });
}

/** Which spec field a Docker 400 ("bad parameter") on create or start is about, judged by its message. */
export function specFieldForDockerMessage(message: string): string {
  if (/\bexec\b|executable|command/i.test(message)) return 'spec.command';
  if (/cpu/i.test(message)) return 'spec.vcpus';
  if (/memory/i.test(message)) return 'spec.memory_mib';
  return 'spec';
}

/**
 * Memory in use in MiB, the way `docker stats` counts it: usage minus the
 * page cache the kernel can drop (total_inactive_file on cgroup v1,
 * inactive_file on v2, cache on old engines).
 */
export function memoryUsedMiB(memory: { usage?: number; stats?: Record<string, number | undefined> }): number {
  const usage = memory.usage ?? 0;
  const stats = memory.stats ?? {};
  const reclaimable = stats.total_inactive_file ?? stats.inactive_file ?? stats.cache ?? 0;
  return (reclaimable < usage ? usage - reclaimable : usage) / MIB;
}

/** Container create options for a workload; pure so the mapping from spec is testable. */
export function buildCreateOptions(
  hostId: string,
  workloadId: string,
  spec: WorkloadSpec,
  config: Pick<DockerDriverConfig, 'network' | 'stopTimeoutSeconds'>,
): Docker.ContainerCreateOptions {
  const memory = spec.memory_mib * MIB;
  const ports = spec.ports ?? [];
  if (ports.length > 0 && (config.network === 'none' || config.network === 'host'))
    throw new InvalidArgumentError('spec.ports', `cannot be published from network ${config.network}; name a network in the spec`);
  return {
    name: backendName(hostId, workloadId),
    Image: spec.image,
    ...(ports.length > 0 ? { ExposedPorts: Object.fromEntries(ports.map((p) => [`${p.port}/${p.protocol}`, {}])) } : {}),
    ...(spec.command.length > 0 ? { Cmd: spec.command } : {}),
    Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
    Labels: buildLabels(hostId, workloadId, spec),
    StopTimeout: config.stopTimeoutSeconds,
    HostConfig: {
      Memory: memory,
      MemorySwap: memory, // equal to Memory: no swap on top of the limit
      NanoCpus: Math.round(spec.vcpus * 1e9),
      NetworkMode: config.network,
      ...(ports.length > 0 ? { PortBindings: portBindings(ports) } : {}),
      // The agent decides what runs; Docker must not restart anything behind its back.
      RestartPolicy: { Name: 'no' },
      // `workload logs` reads this; rotated so a chatty container cannot fill the disk.
      LogConfig: { Type: 'json-file', Config: { 'max-size': CONTAINER_LOG_MAX_SIZE, 'max-file': CONTAINER_LOG_FILES } },
    },
  };
}

/** Runs containers on a Docker Engine reached through its Unix socket. See Driver for the contract. */
class DockerDriver implements Driver {
  readonly name = DOCKER_DRIVER_NAME;
  readonly kinds: readonly WorkloadKind[] = [KIND];
  private readonly docker: Docker;
  private readonly hostId: string;
  private readonly log: Logger;
  private readonly images: ImageProvider | undefined;
  private readonly network: DriverContext['network'];
  /** Loads in progress by tag: concurrent creates of one image load it once. */
  private readonly loading = new Map<string, Promise<void>>();

  constructor(
    private readonly config: DockerDriverConfig,
    context: DriverContext,
  ) {
    this.docker = new Docker({ socketPath: config.socketPath });
    this.hostId = context.hostId;
    this.log = context.log.child({ driver: DOCKER_DRIVER_NAME });
    this.images = context.images;
    this.network = context.network;
  }

  async fingerprint(): Promise<DriverFingerprint> {
    const base = { name: this.name, kinds: [...this.kinds], domain_types: [] as string[] };
    try {
      const [version, info] = await Promise.all([this.docker.version(), this.docker.info() as Promise<{ NCPU?: unknown; MemTotal?: unknown }>]);
      const fingerprint: DriverFingerprint = { ...base, version: version.Version, healthy: true, detail: '' };
      if (typeof info.NCPU === 'number' && typeof info.MemTotal === 'number') {
        fingerprint.capacity = { vcpus: info.NCPU, memoryMiB: Math.floor(info.MemTotal / MIB) };
      }
      return fingerprint;
    } catch (err) {
      const detail = `${this.config.socketPath}: ${mapDockerError(err, '').message}`.slice(0, DETAIL_MAX);
      return { ...base, version: '', healthy: false, detail };
    }
  }

  async create(workloadId: string, spec: WorkloadSpec): Promise<DriverWorkload> {
    if (spec.kind !== KIND) throw new InvalidArgumentError('spec.kind', `the ${this.name} driver runs containers only, not ${spec.kind}`);

    const existing = await this.inspectByName(workloadId);
    if (existing) return this.ownedOrConflict(workloadId, existing);
    const image = await this.resolveImage(spec.image, workloadId);
    return this.makeContainer(workloadId, spec, image, true);
  }

  /** Creates the workload's container from `image` (which stands in for the spec's), and starts it when asked to. */
  private async makeContainer(workloadId: string, spec: WorkloadSpec, image: string, start: boolean): Promise<DriverWorkload> {
    const joined = engineNetworkOf(spec, this.network);
    const networkMode = joined ?? (spec.network === SPEC_NETWORK_NONE ? 'none' : this.config.network);
    let container: Docker.Container;
    const deadline = Date.now() + NAME_RACE_TIMEOUT_MS;
    for (;;) {
      try {
        container = await this.docker.createContainer(buildCreateOptions(this.hostId, workloadId, { ...spec, image }, { ...this.config, network: networkMode }));
        break;
      } catch (err) {
        if (statusCodeOf(err) === 400) throw invalidSpec(err);
        if (statusCodeOf(err) !== 409) throw mapDockerError(err, workloadId);
        // Another create for this name is in flight. Docker reserves the name before the
        // container can be inspected, so the winner may not be visible yet: look again,
        // and try to create again in case the winner failed and released the name.
        const winner = await this.inspectByName(workloadId);
        if (winner) return this.ownedOrConflict(workloadId, winner);
        if (Date.now() > deadline) throw new UnavailableError(`container name ${backendName(this.hostId, workloadId)} is held by a create still in progress`, { cause: err });
        await delay(NAME_RACE_POLL_MS);
      }
    }

    if (!start) return this.refresh(workloadId, container.id);
    try {
      await ignoreNotModified(container.start());
    } catch (err) {
      // Leave nothing behind, so that a retried create starts afresh instead of returning a dead container.
      await container.remove({ force: true, v: true }).catch((removeErr: unknown) => {
        this.log.warn({ workloadId, err: errorMessage(removeErr) }, 'could not remove container that failed to start');
      });
      throw statusCodeOf(err) === 400 ? invalidSpec(err) : mapDockerError(err, workloadId);
    }
    this.log.info({ workloadId, container: container.id }, 'container created');
    return this.refresh(workloadId, container.id);
  }

  /**
   * A stopped container's state: its writable layer committed to an image
   * (labelled with the workload, removed on release) and saved as an archive.
   * Volumes are not carried: virtfleet containers have none of their own.
   */
  readonly stateTransfer: WorkloadStateTransfer = {
    exportState: async (workloadId, dir, options) => {
      refuseMemory(options);
      const info = await this.requireOwned(workloadId);
      if (info.State.Running) throw new FailedPreconditionError(`workload ${workloadId} is ${info.State.Paused ? 'paused' : 'running'}; its state is exported once it is stopped`);
      return this.commitState(workloadId, info.Id, dir);
    },
    // Docker pauses a running container for the moment of the commit, so the layer is consistent.
    snapshotState: async (workloadId, dir, options) => {
      refuseMemory(options);
      return this.commitState(workloadId, (await this.requireOwned(workloadId)).Id, dir);
    },
    importState: async (workloadId, spec, files) => {
      if (spec.kind !== KIND) throw new InvalidArgumentError('spec.kind', `the ${this.name} driver runs containers only, not ${spec.kind}`);
      const unknown = Object.keys(files).filter((role) => role !== 'image');
      if (unknown.length > 0 || !files.image) throw new InvalidArgumentError('files', `a container's state is one image archive (role image), not ${JSON.stringify(Object.keys(files))}`);
      const existing = await this.inspectByName(workloadId);
      if (existing) return this.ownedOrConflict(workloadId, existing);
      const tag = `${STATE_IMAGE_REPO}:${workloadId}`;
      await this.load(files.image, tag);
      return this.makeContainer(workloadId, spec, tag, false);
    },
  };

  /** The container's writable layer committed to an image (removed on release) and saved as an archive in `dir`. */
  private async commitState(workloadId: string, containerId: string, dir: string): Promise<ExportedState> {
    const committed = (await this.call(workloadId, () => this.docker.getContainer(containerId).commit({ comment: `virtfleet: the state of workload ${workloadId}` }))) as { Id: string };
    const archive = join(dir, 'image.tar');
    try {
      const stream = await this.call(workloadId, () => this.docker.getImage(committed.Id).get());
      await pipeline(stream, createWriteStream(archive, { mode: 0o600 }));
    } catch (err) {
      await this.removeImage(committed.Id);
      throw err;
    }
    return { files: { image: archive }, release: () => this.removeImage(committed.Id) };
  }

  private async removeImage(id: string): Promise<void> {
    try {
      await this.docker.getImage(id).remove({ force: false });
    } catch (err) {
      // Still used by a container made from it (an import on this host): Docker keeps it, and so do we.
      if (statusCodeOf(err) !== 404 && statusCodeOf(err) !== 409) this.log.warn({ image: id, err: errorMessage(err) }, 'exported state image not removed');
    }
  }

  async start(workloadId: string): Promise<DriverWorkload> {
    const info = await this.requireOwned(workloadId);
    if (info.State.Running) return toDriverWorkload(info); // running, paused or restarting
    await this.call(workloadId, () => ignoreNotModified(this.docker.getContainer(info.Id).start()));
    return this.refresh(workloadId, info.Id);
  }

  async stop(workloadId: string, options: StopOptions): Promise<DriverWorkload> {
    const info = await this.requireOwned(workloadId);
    if (!info.State.Running) return toDriverWorkload(info);
    const t = options.force ? 0 : Math.max(0, Math.ceil(options.timeoutSeconds));
    // Docker unpauses a paused container itself before killing it.
    await this.call(workloadId, () => ignoreNotModified(this.docker.getContainer(info.Id).stop({ t })));
    return this.refresh(workloadId, info.Id);
  }

  async pause(workloadId: string): Promise<DriverWorkload> {
    const info = await this.requireOwned(workloadId);
    if (info.State.Paused) return toDriverWorkload(info);
    if (info.State.Status !== 'running') throw notRunning(workloadId, info, 'paused');
    return this.freeze(workloadId, info.Id, true);
  }

  async resume(workloadId: string): Promise<DriverWorkload> {
    const info = await this.requireOwned(workloadId);
    if (!info.State.Running) throw notRunning(workloadId, info, 'resumed');
    if (!info.State.Paused) return toDriverWorkload(info);
    return this.freeze(workloadId, info.Id, false);
  }

  async delete(workloadId: string): Promise<void> {
    const info = await this.inspectByName(workloadId);
    if (!info) return;
    // Another host's container under our name is not absent, it is not ours to remove.
    if (!isOwnedBy(info.Config.Labels, this.hostId, workloadId)) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    try {
      await this.docker.getContainer(info.Id).remove({ force: true, v: true });
    } catch (err) {
      if (statusCodeOf(err) === 404) return; // removed concurrently
      throw mapDockerError(err, workloadId);
    }
    this.log.info({ workloadId, container: info.Id }, 'container removed');
    // A container that came here by cold migration was made from its own state image: it goes too.
    await this.removeImage(`${STATE_IMAGE_REPO}:${workloadId}`);
  }

  async inspect(workloadId: string): Promise<DriverWorkload | undefined> {
    const info = await this.inspectByName(workloadId);
    return info && isOwnedBy(info.Config.Labels, this.hostId, workloadId) ? toDriverWorkload(info) : undefined;
  }

  async *logs(workloadId: string, request: LogRequest, signal: AbortSignal): AsyncGenerator<LogChunk> {
    const info = await this.inspectByName(workloadId);
    if (!info || !isOwnedBy(info.Config.Labels, this.hostId, workloadId)) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    const container = this.docker.getContainer(info.Id);
    const options = {
      stdout: true,
      stderr: true,
      timestamps: false,
      ...(request.tailLines !== undefined ? { tail: request.tailLines } : {}),
      ...(request.sinceMs !== undefined ? { since: Math.floor(request.sinceMs / 1000) } : {}),
      abortSignal: signal,
    };
    let source: AsyncIterable<Buffer>;
    try {
      source = request.follow
        ? ((await container.logs({ ...options, follow: true })) as unknown as AsyncIterable<Buffer>)
        : Readable.from([await container.logs({ ...options, follow: false })]);
    } catch (err) {
      if (signal.aborted) return;
      throw mapDockerError(err, workloadId);
    }
    try {
      yield* demuxDockerLog(source);
    } catch (err) {
      // A follow ends when the reader goes away (abort) or Docker ends it (the container was removed).
      if (!signal.aborted) throw mapDockerError(err, workloadId);
    }
  }

  async list(): Promise<DriverWorkload[]> {
    const containers = await this.call('', () =>
      this.docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.host}=${this.hostId}`] } }),
    );
    const workloads: DriverWorkload[] = [];
    for (const c of containers) {
      const workloadId = c.Labels[DOCKER_LABELS.workload];
      // Skip anything carrying our host label that we did not create under our naming scheme.
      if (!workloadId || !c.Names.includes(`/${backendName(this.hostId, workloadId)}`)) continue;
      workloads.push({
        workloadId,
        name: c.Labels[DOCKER_LABELS.name] ?? '',
        kind: KIND,
        state: dockerStateToWorkloadState({ Status: c.State }),
        ref: c.Id,
        ...addressesOf(c.NetworkSettings?.Networks),
      });
    }
    return workloads;
  }

  /** Reported for running and paused containers: a paused one still holds its memory. */
  async usage(workloadId: string): Promise<WorkloadUsage | undefined> {
    const info = await this.inspect(workloadId);
    if (!info || (info.state !== 'running' && info.state !== 'paused')) return undefined;
    let stats: Docker.ContainerStats;
    try {
      stats = await this.docker.getContainer(info.ref).stats({ stream: false, 'one-shot': true });
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined; // removed since we looked
      throw mapDockerError(err, workloadId);
    }
    // A container that stopped since we looked yields zeroed stats with a zero `read` time rather than an error.
    if (stats.read.startsWith('0001-01-01')) return undefined;
    return {
      cpuTimeNs: stats.cpu_stats.cpu_usage.total_usage,
      memoryUsedMiB: memoryUsedMiB(stats.memory_stats as { usage?: number; stats?: Record<string, number | undefined> }),
    };
  }

  async close(): Promise<void> {
    // dockerode opens a fresh socket connection per request; nothing is held open.
  }

  /** The container named after the workload, whoever owns it; undefined when there is none. */
  private async inspectByName(workloadId: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.docker.getContainer(backendName(this.hostId, workloadId)).inspect();
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw mapDockerError(err, workloadId);
    }
  }

  private async requireOwned(workloadId: string): Promise<Docker.ContainerInspectInfo> {
    const info = await this.inspectByName(workloadId);
    if (!info || !isOwnedBy(info.Config.Labels, this.hostId, workloadId)) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    return info;
  }

  /** Re-reads a container after a change, by id so that a same-named replacement is never mistaken for it. */
  private async refresh(workloadId: string, containerId: string): Promise<DriverWorkload> {
    return toDriverWorkload(await this.call(workloadId, () => this.docker.getContainer(containerId).inspect()));
  }

  private ownedOrConflict(workloadId: string, info: Docker.ContainerInspectInfo): DriverWorkload {
    if (isOwnedBy(info.Config.Labels, this.hostId, workloadId)) return toDriverWorkload(info);
    const owner = info.Config.Labels?.[DOCKER_LABELS.host];
    throw new FailedPreconditionError(
      `container ${backendName(this.hostId, workloadId)} already exists and belongs to ${owner ? `host ${JSON.stringify(owner)}` : 'no virtfleet host'}`,
    );
  }

  /**
   * The image to create the container from: a pinned catalog image
   * (`NAME@sha256:<hex>`, as the coordinator pins one), loaded from the image
   * cache under `virtfleet-catalog:<hex>` unless already there; else a
   * reference the engine must already hold.
   */
  private async resolveImage(image: string, workloadId: string): Promise<string> {
    const ref = parseCatalogRef(image);
    if (ref?.digest && this.images) {
      const tag = catalogImageTag(ref.digest);
      if (await this.hasImage(tag, workloadId)) return tag;
      let lease: ImageLease | undefined;
      try {
        lease = await this.images.acquire(ref);
      } catch (err) {
        // Not a catalog image after all: a Docker reference by digest, which the engine must hold.
        if (!(err instanceof NotFoundError)) throw err;
      }
      if (lease) {
        try {
          await this.loadOnce(lease.image.path, tag);
        } finally {
          await lease.release();
        }
        return tag;
      }
    }
    await this.requireImage(image, workloadId);
    return image;
  }

  private loadOnce(archive: string, tag: string): Promise<void> {
    let running = this.loading.get(tag);
    if (!running) {
      running = this.load(archive, tag).finally(() => this.loading.delete(tag));
      this.loading.set(tag, running);
    }
    return running;
  }

  /** `docker load` of a `docker save` archive, then the catalog tag on what it loaded. */
  private async load(archive: string, tag: string): Promise<void> {
    const startedAt = performance.now();
    let output = '';
    try {
      const stream = await this.docker.loadImage(createReadStream(archive), { quiet: true });
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(
          stream,
          (err: Error | null) => (err ? reject(err) : resolve()),
          (event: { stream?: string; error?: string }) => {
            if (event.error) reject(new Error(event.error));
            if (event.stream) output += event.stream;
          },
        );
      });
    } catch (err) {
      throw new InvalidArgumentError('spec.image', `Docker could not load the catalog image: ${errorMessage(err)}`, { cause: err });
    }
    const loaded = LOADED.exec(output)?.[1];
    if (!loaded) throw new InvalidArgumentError('spec.image', `the catalog image loaded no image Docker names (it said ${JSON.stringify(output.slice(0, 200))})`);
    const [repo, tagName] = [tag.slice(0, tag.lastIndexOf(':')), tag.slice(tag.lastIndexOf(':') + 1)];
    await this.docker.getImage(loaded).tag({ repo, tag: tagName });
    this.log.info({ image: loaded, tag, ms: Math.round(performance.now() - startedAt) }, 'catalog image loaded');
  }

  private async hasImage(image: string, workloadId: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (err) {
      if (statusCodeOf(err) === 404) return false;
      throw mapDockerError(err, workloadId);
    }
  }

  private async requireImage(image: string, workloadId: string): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw mapDockerError(err, workloadId);
      // No registry is reachable from agents, so a missing image is a request error, not something to pull.
      throw new InvalidArgumentError('spec.image', `image ${JSON.stringify(image)} is not present on this host and the agent does not pull images; load it with docker load or docker import`, {
        cause: err,
      });
    }
  }

  /** Pauses or unpauses a container that was running (resp. paused) when we looked. */
  private async freeze(workloadId: string, containerId: string, paused: boolean): Promise<DriverWorkload> {
    const container = this.docker.getContainer(containerId);
    try {
      await (paused ? container.pause() : container.unpause());
    } catch (err) {
      // The state changed since we looked (Docker says 409 for pause but 500 for unpause), so judge by the state now.
      const now = await this.call(workloadId, () => container.inspect());
      if (now.State.Running && now.State.Paused === paused) return toDriverWorkload(now);
      if (!now.State.Running) throw notRunning(workloadId, now, paused ? 'paused' : 'resumed');
      throw mapDockerError(err, workloadId);
    }
    return this.refresh(workloadId, containerId);
  }

  private async call<T>(workloadId: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapDockerError(err, workloadId);
    }
  }
}

/** Docker answers 304 Not Modified to starting a started or stopping a stopped container: the state we asked for. */
async function ignoreNotModified(request: Promise<unknown>): Promise<void> {
  try {
    await request;
  } catch (err) {
    if (statusCodeOf(err) !== 304) throw err;
  }
}

/** Docker answers 400 to create or start when the spec cannot run, e.g. an executable the image lacks. */
function invalidSpec(err: unknown): InvalidArgumentError {
  const message = dockerMessage(err);
  return new InvalidArgumentError(specFieldForDockerMessage(message), message, { cause: err });
}

function notRunning(workloadId: string, info: Docker.ContainerInspectInfo, verb: 'paused' | 'resumed'): FailedPreconditionError {
  return new FailedPreconditionError(`workload ${JSON.stringify(workloadId)} is ${dockerStateToWorkloadState(info.State)}; only a running workload can be ${verb}`);
}

function toDriverWorkload(info: Docker.ContainerInspectInfo): DriverWorkload {
  const labels = info.Config.Labels ?? {};
  const workload: DriverWorkload = {
    workloadId: labels[DOCKER_LABELS.workload] ?? '',
    name: labels[DOCKER_LABELS.name] ?? '',
    kind: KIND,
    state: dockerStateToWorkloadState(info.State),
    ref: info.Id,
  };
  const message = stateMessage(info.State);
  if (message) workload.message = message;
  if (info.State.Status === 'exited') workload.exitCode = info.State.ExitCode;
  return Object.assign(workload, addressesOf(info.NetworkSettings.Networks));
}

const addressesOf = (networks: Record<string, { IPAddress?: string }> | undefined): { addresses?: string[] } => {
  const addresses = containerAddresses(networks);
  return addresses.length > 0 ? { addresses } : {};
};

/** The IPv4 addresses Docker gave a container on its networks, in network name order. */
export function containerAddresses(networks: Record<string, { IPAddress?: string }> | undefined): string[] {
  return Object.keys(networks ?? {})
    .sort()
    .flatMap((name) => networks?.[name]?.IPAddress || []);
}

function stateMessage(state: Docker.ContainerInspectInfo['State']): string | undefined {
  if (state.Error) return state.Error;
  if (state.Running) return undefined;
  if (state.OOMKilled) return `killed for running out of memory (exit code ${state.ExitCode})`;
  if (state.Status === 'exited') return `exited with code ${state.ExitCode}`;
  return undefined;
}

/** Builds a Docker driver. Does not contact the daemon: an unreachable daemon shows in fingerprint(). */
export const createDockerDriver: DriverFactory<DockerDriverConfig> = async (config, context) =>
  new DockerDriver({ ...DEFAULT_CONFIG, ...definedOnly(config) }, context);

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Docker checkpoints (CRIU) are experimental and absent from Debian's docker.io: a container's state is its layer only. */
function refuseMemory(options: StateOptions | undefined): void {
  if (options?.memory) throw new FailedPreconditionError('a container\'s memory is not carried: it moves and is backed up as its writable layer, and starts afresh');
}
