import { constants } from 'node:fs';
import { access, copyFile, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ConnectListAllDomainsFlags, Hypervisor, type Domain, type NodeInfo } from '@unraid/libvirt';
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  VirtfleetError,
  errorMessage,
  type LogChunk,
  type Logger,
  type LogRequest,
  type WorkloadKind,
  type WorkloadSpec,
  type WorkloadState,
  WORKLOAD_ID,
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
  type LiveMigration,
  type StopOptions,
  type WorkloadStateTransfer,
  type WorkloadUsage,
} from '../driver.js';
import {
  buildDomainXml,
  domainBackupXml,
  MEMORY_ROLE,
  migrationFilesOf,
  parseGuestDomainTypes,
  parseOwnership,
  relabelDomainXml,
  retargetDomainXml,
  savedStateFiles,
  type DomainOwnership,
  type DomainType,
} from './domain-xml.js';
import { readSaveImage } from './save-image.js';
import { runPushBackup } from './libvirt-backup.js';
import { loadLibvirtExt, type DomainInterface, type LibvirtExtLoad } from './native-ext.js';
import { VmStorage, type VmFiles } from './vm-storage.js';
import { LibvirtLiveMigration } from './libvirt-migration.js';
import { tailFile } from '../../file-tail.js';
import { PortForwarder, type Forward } from '../../network/port-forwarder.js';

export const LIBVIRT_DRIVER_NAME = 'libvirt';

export interface LibvirtDriverConfig {
  /** libvirt connection URI; `test:///default` is libvirt's in-process simulated hypervisor. @default 'qemu:///system' */
  uri: string;
  /**
   * `<domain type>` of new VMs. 'auto' picks 'kvm' when libvirt's capabilities offer it for
   * x86_64, else what they offer; without that list, 'test' for test:// URIs, else 'kvm' if
   * /dev/kvm opens read-write, else 'qemu'. If a kvm guest then fails to start for want of
   * KVM (libvirt offers kvm but its QEMU user cannot open /dev/kvm), it uses 'qemu' for good.
   * @default 'auto'
   */
  domainType: 'auto' | DomainType;
  /** Graceful-shutdown wait used when a stop request carries no valid timeout. @default 10 */
  stopTimeoutSeconds: number;
  /** Where VMs' disks, seeds and console logs go. @default `<stateDir>/vms` */
  vmDir?: string;
  /** How other hosts reach this one for live migration; without it, none is received. */
  migration?: { uri: string; address: string };
  /** Live migrations leaving this host at once; more wait their turn. @default 2 */
  maxOutgoingMigrations?: number;
}

export const LIBVIRT_DRIVER_DEFAULTS: LibvirtDriverConfig = { uri: 'qemu:///system', domainType: 'auto', stopTimeoutSeconds: 10, maxOutgoingMigrations: 2 };

/** libvirt's virDomainState values. */
export const VIR_DOMAIN_STATE = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;
const S = VIR_DOMAIN_STATE;

/** Maps a virDomainState onto virtfleet's workload states. */
export function mapDomainState(state: number): { state: WorkloadState; message?: string } {
  switch (state) {
    case S.RUNNING:
      return { state: 'running' };
    case S.BLOCKED:
      return { state: 'running', message: 'blocked on a resource' };
    case S.PAUSED:
      return { state: 'paused' };
    case S.SHUTDOWN:
      return { state: 'running', message: 'shutting down' };
    case S.SHUTOFF:
      return { state: 'stopped' };
    case S.CRASHED:
      return { state: 'failed', message: 'crashed' };
    case S.PMSUSPENDED:
      return { state: 'paused', message: 'suspended by guest power management' };
    case S.NOSTATE:
      return { state: 'unknown', message: 'libvirt reports no state' };
    default:
      return { state: 'unknown', message: `unknown libvirt domain state ${state}` };
  }
}

const isDown = (state: number): boolean => state === S.SHUTOFF || state === S.CRASHED;

/** A live migration still arriving, as the workload's state on its target. */
const INCOMING: { state: WorkloadState; message: string } = { state: 'creating', message: 'receiving a live migration' };

// @unraid/libvirt rejects with libvirt's message only (code and domain are always -1), so matching the text is all there is.
const DOMAIN_NOT_FOUND = /^Domain not found\b/;
const OPERATION_INVALID = /^Requested operation is not valid\b/;
const CONNECTION_LOST =
  /Failed to connect socket|Cannot (recv|write) data|End of file while reading data|client socket is closed|invalid connection pointer|no connection driver available|unable to connect to server|keepalive timeout|Broken pipe|Connection reset by peer|Connection refused/i;
const SPEC_REJECTED = /^(XML error|unsupported configuration)\b/;
const KVM_UNUSABLE = /Could not access KVM kernel module|failed to initialize kvm|requires KVM, but it is not available|KVM is not supported/i;

/**
 * Maps a libvirt failure onto virtfleet's errors: a missing domain is NotFoundError for the
 * workload, a lost or refused connection UnavailableError, an operation the domain's state
 * forbids FailedPreconditionError, anything else InternalError with libvirt's message.
 */
export function mapLibvirtError(err: unknown, workloadId = ''): VirtfleetError {
  if (err instanceof VirtfleetError) return err;
  const message = errorMessage(err);
  if (DOMAIN_NOT_FOUND.test(message)) return new NotFoundError(WORKLOAD_RESOURCE, workloadId, { cause: err });
  if (CONNECTION_LOST.test(message)) return new UnavailableError(`libvirt unreachable: ${message}`, { cause: err });
  if (OPERATION_INVALID.test(message)) return new FailedPreconditionError(`libvirt: ${message}`, { cause: err });
  return new InternalError(`libvirt: ${message}`, { cause: err });
}

const isDomainNotFound = (err: unknown): boolean => err instanceof NotFoundError || (!(err instanceof VirtfleetError) && DOMAIN_NOT_FOUND.test(errorMessage(err)));
const isConnectionLost = (err: unknown): boolean => err instanceof UnavailableError || (!(err instanceof VirtfleetError) && CONNECTION_LOST.test(errorMessage(err)));

const isTestUri = (uri: string): boolean => /^test(\+[a-z]+)?:/.test(uri);

/**
 * Picks the domain type for new VMs. `offered` is what libvirt's capabilities list for
 * x86_64 guests (undefined without the addon); `kvmDevice` whether /dev/kvm opens read-write.
 */
export function chooseDomainType(configured: LibvirtDriverConfig['domainType'], uri: string, offered: readonly string[] | undefined, kvmDevice: boolean): DomainType {
  if (configured !== 'auto') return configured;
  if (offered && offered.length > 0) {
    if (offered.includes('kvm')) return 'kvm';
    if (offered.includes('test') && !offered.includes('qemu')) return 'test';
    return 'qemu';
  }
  // libvirt's test driver lists no x86_64 guests, yet runs them.
  if (isTestUri(uri)) return 'test';
  return kvmDevice ? 'kvm' : 'qemu';
}

async function kvmDeviceUsable(): Promise<boolean> {
  try {
    const handle = await open('/dev/kvm', 'r+');
    await handle.close();
    return true;
  } catch {
    return false;
  }
}

interface Session {
  hv: Hypervisor;
  ready: Promise<void>;
  open: boolean;
  inflight: number;
  retired: boolean;
  closing?: Promise<void>;
}

/**
 * The one libvirt connection a driver uses, opened lazily and replaced when it is found dead.
 * A Hypervisor is never reused after connectClose: @unraid/libvirt keeps the freed pointer.
 */
class Connection {
  private session: Session | undefined;
  private closed = false;
  /** Bumped for every new connection, so cached facts about libvirtd can be refreshed. */
  generation = 0;

  constructor(
    readonly uri: string,
    private readonly log: Logger,
  ) {}

  /**
   * Runs `op` with the connection. If the connection turns out to be lost, runs it once more on
   * a new one: callers pass whole driver operations, and those are idempotent.
   */
  async run<T>(op: (hv: Hypervisor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const session = await this.acquire();
      try {
        return await op(session.hv);
      } catch (err) {
        if (!isConnectionLost(err)) throw err;
        this.retire(session);
        if (attempt >= 2) throw err;
        this.log.warn({ err: errorMessage(err), uri: this.uri }, 'libvirt connection lost; reconnecting');
      } finally {
        session.inflight--;
        this.closeIfIdle(session);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = this.session;
    if (!session) return;
    this.retire(session);
    this.closeIfIdle(session);
    await session.closing;
  }

  private async acquire(): Promise<Session> {
    if (this.closed) throw new UnavailableError('libvirt driver is closed');
    if (!this.session) {
      let hv: Hypervisor;
      try {
        hv = new Hypervisor({ uri: this.uri });
      } catch (err) {
        throw new UnavailableError(`cannot load @unraid/libvirt: ${errorMessage(err)}`, { cause: err });
      }
      const session: Session = { hv, ready: Promise.resolve(), open: false, inflight: 0, retired: false };
      session.ready = hv.connectOpen().then(() => {
        session.open = true;
      });
      this.session = session;
      this.generation++;
    }
    const session = this.session;
    session.inflight++;
    try {
      await session.ready;
    } catch (err) {
      session.inflight--;
      this.retire(session);
      throw new UnavailableError(`cannot connect to libvirt at ${this.uri}: ${errorMessage(err)}`, { cause: err });
    }
    return session;
  }

  private retire(session: Session): void {
    session.retired = true;
    if (this.session === session) this.session = undefined;
  }

  private closeIfIdle(session: Session): void {
    if (!session.retired || session.inflight > 0 || !session.open || session.closing) return;
    session.closing = session.hv.connectClose().catch((err: unknown) => {
      this.log.debug({ err: errorMessage(err), uri: this.uri }, 'closing a libvirt connection failed');
    });
  }
}

/** A domain this driver looked up, with what its metadata says about its owner. */
interface Located {
  dom: Domain;
  uuid: string;
  owner: DomainOwnership | null;
}
interface Owned extends Located {
  owner: DomainOwnership;
}

/** What the addon tells about libvirtd; fetched once per connection. */
interface About {
  version: string;
  hypervisorVersion: string;
  /** Domain types libvirt offers for x86_64 guests; undefined when unknown. */
  offeredTypes: string[] | undefined;
  /** Why something is missing. */
  note?: string;
  /** The query failed (libvirtd unreachable); worth asking again. */
  failed: boolean;
}

const POLL_INTERVAL_MS = 100;
const ADDRESS_TTL_MS = 5_000;
const MAX_DETAIL = 1024;

/** Runs VMs as libvirt domains; owns only domains whose metadata carries its host id. */
export class LibvirtDriver implements Driver {
  readonly name = LIBVIRT_DRIVER_NAME;
  readonly kinds: readonly WorkloadKind[] = ['vm'];
  private readonly conn: Connection;
  private readonly log: Logger;
  /** Ownership by domain UUID (null: not a virtfleet domain), so telemetry ticks need not re-read XML. */
  private readonly owners = new Map<string, DomainOwnership | null>();
  private aboutCache: { generation: number; info: Promise<About> } | undefined;
  private chosenType: DomainType | undefined;
  /** A kvm guest failed to start for want of KVM; 'auto' uses qemu from then on. */
  private kvmFailed = false;
  private readonly storage: VmStorage;
  /** Publishes VMs' ports on the host network, when there is one. */
  private readonly forwarder: PortForwarder | undefined;
  /** Each VM's addresses, by domain UUID, and when they were read. */
  private readonly addresses = new Map<string, { at: number; addresses: string[] }>();

  constructor(
    private readonly config: LibvirtDriverConfig,
    private readonly context: DriverContext,
    private readonly ext: LibvirtExtLoad = loadLibvirtExt(),
  ) {
    this.log = context.log;
    this.conn = new Connection(config.uri, context.log);
    const vmDir = config.vmDir ?? (context.stateDir ? join(context.stateDir, 'vms') : undefined);
    if (!vmDir) throw new InvalidArgumentError('drivers.libvirt.vmDir', 'is required when the agent gives no state directory');
    this.storage = new VmStorage(vmDir, context.images, context.log.child({ component: 'vm-storage' }));
    if (context.network) this.forwarder = new PortForwarder(context.network.netns, context.log.child({ component: 'published-ports' }));
    this.migration = new LibvirtLiveMigration({
      hostId: context.hostId,
      uri: config.uri,
      migration: config.migration,
      maxOutgoing: config.maxOutgoingMigrations ?? 2,
      ext,
      storage: this.storage,
      log: context.log.child({ component: 'live-migration' }),
      domainXml: (workloadId, flags) => this.call(workloadId, async (hv) => hv.domainGetXMLDesc((await this.require(hv, workloadId)).dom, flags)),
      holds: (workloadId) => this.call(workloadId, async (hv) => (await this.owned(hv, workloadId)) !== undefined),
      stateOf: async (workloadId) => (await this.inspect(workloadId))?.state,
      forget: (workloadId) => {
        for (const [uuid, owner] of this.owners) {
          if (owner?.workloadId !== workloadId) continue;
          this.owners.delete(uuid);
          this.addresses.delete(uuid);
        }
      },
    });
  }

  readonly migration: LiveMigration;

  /**
   * A VM's own disks, carried as they are (the target points overlays at its
   * own copy of the catalog image), and its memory when asked for: a libvirt
   * save image whose XML names files by role, not by this host's paths.
   */
  readonly stateTransfer: WorkloadStateTransfer = {
    exportState: async (workloadId, _dir, options) => {
      const found = await this.inspect(workloadId);
      if (!found) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
      if (found.state !== 'stopped') {
        if (!options?.memory) throw new FailedPreconditionError(`workload ${workloadId} is ${found.state}; its disks are exported once it is stopped`);
        // It stays saved (shut off) here: start resumes it if the move does not happen.
        await this.saveMemory(workloadId, this.storage.savedMemoryPath(workloadId));
      }
      const files = await this.storage.ownDisks(workloadId);
      const saved = this.storage.savedMemoryPath(workloadId);
      if (options?.memory && (await exists(saved))) files[MEMORY_ROLE] = saved;
      return { files, release: () => Promise.resolve() };
    },
    snapshotState: async (workloadId, dir, options) => {
      const found = await this.inspect(workloadId);
      if (!found) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
      const own = await this.storage.ownDisks(workloadId);
      if (options?.memory) {
        if (found.state !== 'running' && found.state !== 'paused') throw new FailedPreconditionError(`workload ${workloadId} is ${found.state}; only a running or paused VM has memory to back up`);
        return { files: await this.saveAndResume(workloadId, own, dir), release: () => Promise.resolve() };
      }
      if (found.state === 'stopped') return { files: own, release: () => Promise.resolve() };
      if (!this.ext.ok) throw new FailedPreconditionError(`backing up a running VM needs the libvirt-ext addon: ${this.ext.reason}`);
      const files = await this.storage.files(workloadId);
      if (!files) throw new FailedPreconditionError(`workload ${workloadId} has no files made by virtfleet on this host`);
      const { xml, targets } = domainBackupXml(files, new Set(Object.keys(own)), dir);
      await runPushBackup(this.ext.ext, this.config.uri, backendName(this.context.hostId, workloadId), xml);
      return { files: targets, release: () => Promise.resolve() };
    },
    importState: async (workloadId, spec, received) => {
      buildDomainXml(workloadId, spec, this.context.hostId, 'qemu');
      const { [MEMORY_ROLE]: memory, ...disks } = received;
      return this.call(workloadId, async (hv) => {
        const existing = await this.lookup(hv, workloadId);
        if (existing) return this.adopt(hv, existing, workloadId);
        const network = engineNetworkOf(spec, this.context.network);
        const files = await this.storage.adoptDisks(workloadId, spec, disks);
        try {
          if (memory !== undefined) await this.storage.keepSavedMemory(workloadId, memory);
          return await this.snapshot(hv, await this.define(hv, workloadId, spec, spec.domain_type ?? (await this.newDomainType()), files, network));
        } catch (err) {
          if (!isConnectionLost(err)) await this.storage.remove(workloadId);
          throw err;
        }
      });
    },
  };

  /** Saves the running VM's memory to `file` (the domain shuts off) with the image's XML naming files by role. */
  private async saveMemory(workloadId: string, file: string): Promise<void> {
    await this.call(workloadId, async (hv) => neutralizeSavedImage(file, this.context.hostId, await this.saveDomain(hv, workloadId, file)));
  }

  /** Saves the running VM to `file` (its domain shuts off); answers its files, whose paths the image names. */
  private async saveDomain(hv: Hypervisor, workloadId: string, file: string): Promise<VmFiles> {
    const found = await this.require(hv, workloadId);
    const files = await this.storage.files(workloadId);
    if (!files) throw new FailedPreconditionError(`workload ${workloadId} has no files made by virtfleet on this host`);
    try {
      await hv.domainSave(found.dom, file);
    } catch (err) {
      if (isConnectionLost(err)) throw err;
      throw new FailedPreconditionError(`libvirt could not save the memory of ${workloadId}: ${errorMessage(err)}`, { cause: err });
    }
    return files;
  }

  /**
   * A running VM's memory and own disks at one instant: saved (it shuts
   * off), its disks copied while nothing writes them, then restored from the
   * image, so it runs on after a pause as long as the save and the copy.
   */
  private async saveAndResume(workloadId: string, own: Record<string, string>, dir: string): Promise<Record<string, string>> {
    return this.call(workloadId, async (hv) => {
      const saved = join(dir, 'memory.save');
      const files = await this.saveDomain(hv, workloadId, saved);
      const copies: Record<string, string> = { [MEMORY_ROLE]: saved };
      try {
        for (const [role, path] of Object.entries(own)) {
          copies[role] = join(dir, `${role.replace(':', '-')}.qcow2`);
          await copyFile(path, copies[role], constants.COPYFILE_FICLONE);
        }
      } finally {
        // The image stays usable after a restore; the VM goes on from it at once.
        await hv.domainRestore(saved).catch((err: unknown) => {
          this.log.error({ workloadId, err: errorMessage(err) }, 'a VM saved for a backup did not resume; reconciliation starts it afresh');
        });
      }
      await neutralizeSavedImage(saved, this.context.hostId, files);
      return copies;
    });
  }

  /**
   * Starts a VM from its saved memory (as its own domain: name, UUID and
   * paths this host's), then drops the image. An image libvirt refuses is
   * dropped too and the VM boots afresh: it would be refused every time.
   */
  private async resumeSaved(hv: Hypervisor, found: Owned, saved: string): Promise<void> {
    const workloadId = found.owner.workloadId;
    const files = await this.storage.files(workloadId);
    try {
      if (!files) throw new FailedPreconditionError(`workload ${workloadId} has no files made by virtfleet on this host`);
      const image = await readSaveImage(saved);
      const roles = migrationFilesOf(files);
      const ours = retargetDomainXml(image.xml, { hostId: this.context.hostId, files: savedStateFiles(Object.keys(roles)) }, { hostId: this.context.hostId, files: roles });
      await image.rewrite(relabelDomainXml(ours, { name: backendName(this.context.hostId, workloadId), uuid: found.uuid, workloadId, workloadName: found.owner.name }));
      await hv.domainRestore(saved);
      this.log.info({ workloadId }, 'VM resumed from its saved memory');
    } catch (err) {
      if (isConnectionLost(err)) throw err;
      this.log.warn({ workloadId, err: errorMessage(err) }, 'the VM\'s saved memory could not be restored; it boots afresh');
      await this.change(hv, found, () => hv.domainCreate(found.dom), (s) => !isDown(s));
    }
    await rm(saved, { force: true });
  }

  /** Takes up VMs' files and opens the connection now, so configuration mistakes show at start-up. An unreachable libvirtd is only logged. */
  async connect(): Promise<void> {
    await this.storage.restore();
    try {
      await this.conn.run(() => Promise.resolve());
    } catch (err) {
      this.log.warn({ err: errorMessage(err), uri: this.config.uri }, 'libvirt is not reachable yet; will retry on each call');
    }
  }

  async fingerprint(): Promise<DriverFingerprint> {
    const base = { name: this.name, kinds: [...this.kinds] };
    let node: NodeInfo;
    try {
      node = await this.conn.run((hv) => hv.nodeGetInfo());
    } catch (err) {
      return { ...base, version: 'unknown', domain_types: [], healthy: false, detail: clip(`libvirt at ${this.config.uri} is unreachable: ${errorMessage(err)}`) };
    }
    try {
      const about = await this.about();
      const type = await this.newDomainType();
      const offered = about.offeredTypes && about.offeredTypes.length > 0 ? about.offeredTypes : type === 'kvm' ? ['kvm', 'qemu'] : [type];
      const detail = [
        `libvirt ${about.version} at ${this.config.uri}, hypervisor ${about.hypervisorVersion || 'version unknown'}; new VMs use domain type ${type}`,
        this.kvmFailed ? 'kvm is offered but a kvm guest failed to start, so qemu (TCG) is used' : '',
        about.note ?? '',
      ];
      return {
        ...base,
        version: about.version,
        domain_types: this.kvmFailed ? offered.filter((t) => t !== 'kvm') : offered,
        healthy: true,
        detail: clip(detail.filter(Boolean).join('; ')),
        capacity: { vcpus: node.cpus, memoryMiB: Math.floor(node.memory / 1024) },
      };
    } catch (err) {
      return { ...base, version: 'unknown', domain_types: [], healthy: false, detail: clip(`fingerprinting libvirt failed: ${errorMessage(err)}`) };
    }
  }

  async create(workloadId: string, spec: WorkloadSpec): Promise<DriverWorkload> {
    // Validates the id and spec before touching libvirt; the real type is chosen below.
    buildDomainXml(workloadId, spec, this.context.hostId, 'qemu');
    return this.call(workloadId, async (hv) => {
      const existing = await this.lookup(hv, workloadId);
      if (existing) return this.adopt(hv, existing, workloadId);
      const network = engineNetworkOf(spec, this.context.network);
      const files = await this.storage.prepare(workloadId, spec);
      try {
        return await this.defineAndStart(hv, workloadId, spec, files, network);
      } catch (err) {
        // Leave nothing behind, so that a retry starts afresh; but a lost connection may have left a
        // domain that the retry adopts, and that domain needs its files.
        if (!isConnectionLost(err)) await this.storage.remove(workloadId);
        throw err;
      }
    });
  }

  private async defineAndStart(hv: Hypervisor, workloadId: string, spec: WorkloadSpec, files: VmFiles, network: string | undefined): Promise<DriverWorkload> {
    for (;;) {
      const type = spec.domain_type ?? (await this.newDomainType());
      let found: Owned;
      try {
        found = await this.define(hv, workloadId, spec, type, files, network);
      } catch (err) {
        if (/already exists/.test(errorMessage(err))) {
          // Someone defined it since the lookup: settle it like the lookup would have.
          const raced = await this.lookup(hv, workloadId);
          if (raced) return this.adopt(hv, raced, workloadId);
        }
        if (SPEC_REJECTED.test(errorMessage(err))) throw new InvalidArgumentError('spec', `libvirt rejected the domain: ${errorMessage(err)}`, { cause: err });
        throw err;
      }
      try {
        await hv.domainCreate(found.dom);
        return await this.snapshot(hv, found);
      } catch (err) {
        if (isConnectionLost(err)) throw err;
        await this.undefineQuietly(hv, found);
        if (spec.domain_type !== undefined || !this.noteKvmFailure(type, err)) throw this.startFailure(err, spec);
      }
    }
  }

  async start(workloadId: string): Promise<DriverWorkload> {
    return this.call(workloadId, async (hv) => {
      const found = await this.require(hv, workloadId);
      const { state } = await hv.domainGetInfo(found.dom);
      if (isDown(state)) {
        // A crashed domain may still be active; it must be torn down before it can start.
        if (state === S.CRASHED) await this.change(hv, found, () => hv.domainDestroy(found.dom), isDown);
        const saved = this.storage.savedMemoryPath(workloadId);
        if (await exists(saved)) await this.resumeSaved(hv, found, saved);
        else await this.change(hv, found, () => hv.domainCreate(found.dom), (s) => !isDown(s));
      }
      return this.snapshot(hv, found);
    });
  }

  async stop(workloadId: string, options: StopOptions): Promise<DriverWorkload> {
    const timeoutSeconds = Number.isFinite(options.timeoutSeconds) && options.timeoutSeconds >= 0 ? options.timeoutSeconds : this.config.stopTimeoutSeconds;
    return this.call(workloadId, async (hv) => {
      const found = await this.require(hv, workloadId);
      const { state } = await hv.domainGetInfo(found.dom);
      if (state === S.SHUTOFF) return this.snapshot(hv, found);
      if (!options.force && timeoutSeconds > 0 && state !== S.CRASHED && (await this.shutDownGracefully(hv, found, state, timeoutSeconds))) {
        return this.snapshot(hv, found);
      }
      await this.change(hv, found, () => hv.domainDestroy(found.dom), isDown);
      return this.snapshot(hv, found);
    });
  }

  async pause(workloadId: string): Promise<DriverWorkload> {
    return this.call(workloadId, async (hv) => {
      const found = await this.require(hv, workloadId);
      const { state } = await hv.domainGetInfo(found.dom);
      if (isDown(state)) throw new FailedPreconditionError(`workload ${workloadId} is ${mapDomainState(state).state}; only a running workload can be paused`);
      if (state !== S.PAUSED && state !== S.PMSUSPENDED) {
        await this.change(hv, found, () => hv.domainSuspend(found.dom), (s) => s === S.PAUSED);
      }
      return this.snapshot(hv, found);
    });
  }

  async resume(workloadId: string): Promise<DriverWorkload> {
    return this.call(workloadId, async (hv) => {
      const found = await this.require(hv, workloadId);
      const { state } = await hv.domainGetInfo(found.dom);
      if (isDown(state)) throw new FailedPreconditionError(`workload ${workloadId} is ${mapDomainState(state).state}; only a paused workload can be resumed`);
      if (state === S.PAUSED) await this.change(hv, found, () => hv.domainResume(found.dom), (s) => s !== S.PAUSED);
      else if (state === S.PMSUSPENDED) await this.change(hv, found, () => hv.domainPMWakeup(found.dom), (s) => s !== S.PMSUSPENDED);
      return this.snapshot(hv, found);
    });
  }

  /** Removes the domain, then its files: overlays, data disks, seed and console log (never a catalog image). */
  async delete(workloadId: string): Promise<void> {
    await this.call(workloadId, async (hv) => {
      const found = await this.owned(hv, workloadId);
      if (found) {
        try {
          const { state } = await hv.domainGetInfo(found.dom);
          if (state !== S.SHUTOFF) await this.change(hv, found, () => hv.domainDestroy(found.dom), isDown);
          await hv.domainUndefine(found.dom);
        } catch (err) {
          if (!isDomainNotFound(err)) throw err;
        }
        this.owners.delete(found.uuid);
        this.addresses.delete(found.uuid);
      }
      // The files under this agent's vmDir are its own, whoever holds a domain of that name.
      await this.storage.remove(workloadId);
    });
  }

  /** The serial console, from the log file libvirt writes (virtlogd rotates it). */
  async *logs(workloadId: string, request: LogRequest, signal: AbortSignal): AsyncGenerator<LogChunk> {
    if (request.sinceMs !== undefined) throw new InvalidArgumentError('options.since', "a VM's console log carries no timestamps; use tail_lines");
    const found = await this.call(workloadId, (hv) => this.owned(hv, workloadId));
    if (!found) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    const files = await this.storage.files(workloadId);
    if (!files) throw new FailedPreconditionError(`VM ${workloadId} was created before virtfleet kept console logs`);
    for await (const data of tailFile(files.consoleLog, request, signal)) yield { stream: 'console', data };
  }

  async inspect(workloadId: string): Promise<DriverWorkload | undefined> {
    try {
      return await this.call(workloadId, async (hv) => {
        const found = await this.owned(hv, workloadId);
        return found ? this.snapshot(hv, found) : undefined;
      });
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async list(): Promise<DriverWorkload[]> {
    return this.call('', async (hv) => {
      const domains = await hv.connectListAllDomains();
      const seen = new Set<string>();
      const workloads = await Promise.all(
        domains.map(async (dom): Promise<DriverWorkload | undefined> => {
          try {
            const name = await hv.domainGetName(dom);
            if (!name.startsWith(backendName(this.context.hostId, ''))) return undefined;
            const uuid = await hv.domainGetUUIDString(dom);
            seen.add(uuid);
            const owner = await this.ownerOf(hv, dom, uuid);
            if (owner?.hostId !== this.context.hostId || name !== backendName(owner.hostId, owner.workloadId)) return undefined;
            return await this.snapshot(hv, { dom, uuid, owner });
          } catch (err) {
            if (isDomainNotFound(err)) return undefined;
            throw err;
          }
        }),
      );
      for (const uuid of this.owners.keys()) if (!seen.has(uuid)) this.owners.delete(uuid);
      const found = workloads.filter((w): w is DriverWorkload => w !== undefined);
      if (this.forwarder) void this.publishPorts(found);
      return found;
    });
  }

  async usage(workloadId: string): Promise<WorkloadUsage | undefined> {
    try {
      return await this.call(workloadId, async (hv) => {
        const found = await this.owned(hv, workloadId);
        if (!found) return undefined;
        const info = await hv.domainGetInfo(found.dom);
        if (mapDomainState(info.state).state !== 'running') return undefined;
        return { cpuTimeNs: info.cpuTime, memoryUsedMiB: info.memory / 1024 };
      });
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.conn.close();
  }

  private async call<T>(workloadId: string, op: (hv: Hypervisor) => Promise<T>): Promise<T> {
    try {
      return await this.conn.run(op);
    } catch (err) {
      throw mapLibvirtError(err, workloadId);
    }
  }

  private async lookup(hv: Hypervisor, workloadId: string): Promise<Located | undefined> {
    if (!WORKLOAD_ID.test(workloadId)) return undefined;
    let dom: Domain;
    try {
      dom = await hv.domainLookupByName(backendName(this.context.hostId, workloadId));
    } catch (err) {
      if (isDomainNotFound(err)) return undefined;
      throw err;
    }
    const uuid = await hv.domainGetUUIDString(dom);
    return { dom, uuid, owner: await this.ownerOf(hv, dom, uuid) };
  }

  private isMine(located: Located, workloadId: string): located is Owned {
    return located.owner?.hostId === this.context.hostId && located.owner.workloadId === workloadId;
  }

  /** The workload's domain if this host owns it; another host's domain counts as absent. */
  private async owned(hv: Hypervisor, workloadId: string): Promise<Owned | undefined> {
    const located = await this.lookup(hv, workloadId);
    return located && this.isMine(located, workloadId) ? located : undefined;
  }

  private async require(hv: Hypervisor, workloadId: string): Promise<Owned> {
    const found = await this.owned(hv, workloadId);
    if (!found) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    return found;
  }

  private async ownerOf(hv: Hypervisor, dom: Domain, uuid: string): Promise<DomainOwnership | null> {
    const cached = this.owners.get(uuid);
    if (cached !== undefined) return cached;
    const owner = (await parseOwnership(await hv.domainGetXMLDesc(dom))) ?? null;
    this.owners.set(uuid, owner);
    return owner;
  }

  private async adopt(hv: Hypervisor, existing: Located, workloadId: string): Promise<DriverWorkload> {
    if (this.isMine(existing, workloadId)) return this.snapshot(hv, existing);
    const holder = existing.owner ? `host ${JSON.stringify(existing.owner.hostId)}` : 'something other than virtfleet';
    throw new FailedPreconditionError(`libvirt domain ${backendName(this.context.hostId, workloadId)} already exists and belongs to ${holder}`);
  }

  private async define(hv: Hypervisor, workloadId: string, spec: WorkloadSpec, type: DomainType, files: VmFiles, network: string | undefined): Promise<Owned> {
    const dom = await hv.domainDefineXML(buildDomainXml(workloadId, spec, this.context.hostId, type, files, network));
    const uuid = await hv.domainGetUUIDString(dom);
    const owner: DomainOwnership = { hostId: this.context.hostId, workloadId, name: spec.name };
    this.owners.set(uuid, owner);
    return { dom, uuid, owner };
  }

  private async undefineQuietly(hv: Hypervisor, found: Owned): Promise<void> {
    try {
      await hv.domainUndefine(found.dom);
      this.owners.delete(found.uuid);
    } catch (err) {
      this.log.warn({ err: errorMessage(err), domain: found.uuid }, 'could not undefine a domain that failed to start');
    }
  }

  /** Returns true if `err` is a kvm guest failing for want of KVM and 'auto' may fall back to qemu. */
  private noteKvmFailure(type: DomainType, err: unknown): boolean {
    if (type !== 'kvm' || this.config.domainType !== 'auto' || this.kvmFailed || !KVM_UNUSABLE.test(errorMessage(err))) return false;
    this.kvmFailed = true;
    this.log.warn({ err: errorMessage(err), uri: this.config.uri }, 'libvirt offers kvm but a kvm guest cannot start; using qemu from now on');
    return true;
  }

  private startFailure(err: unknown, spec: WorkloadSpec): unknown {
    const message = errorMessage(err);
    if (spec.image && message.includes(spec.image)) return new InvalidArgumentError('spec.image', `libvirt cannot use the image: ${message}`, { cause: err });
    return err;
  }

  /** ACPI shutdown, then wait; false if the domain is still up at the deadline. A guest without an OS ignores ACPI. */
  private async shutDownGracefully(hv: Hypervisor, found: Owned, state: number, timeoutSeconds: number): Promise<boolean> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    if (state === S.PAUSED) {
      // A paused guest cannot act on the ACPI event; if it cannot be resumed either, it gets destroyed.
      try {
        await this.change(hv, found, () => hv.domainResume(found.dom), (s) => s !== S.PAUSED);
      } catch (err) {
        if (isConnectionLost(err) || isDomainNotFound(err)) throw err;
        return false;
      }
    }
    try {
      await hv.domainShutdown(found.dom);
    } catch (err) {
      if (isConnectionLost(err) || isDomainNotFound(err)) throw err;
      // Refused because it is already going down or gone; the wait below tells which.
    }
    for (;;) {
      if (isDown((await hv.domainGetInfo(found.dom)).state)) return true;
      const left = deadline - Date.now();
      if (left <= 0) break;
      await delay(Math.min(POLL_INTERVAL_MS, left));
    }
    this.log.info({ workloadId: found.owner.workloadId, timeoutSeconds }, 'domain did not shut down in time; destroying it');
    return false;
  }

  /**
   * Runs a state change. If libvirt refuses it but the domain has reached the wanted state
   * anyway (a concurrent change, or the test driver refusing a no-op), that is success.
   */
  private async change(hv: Hypervisor, found: Owned, action: () => Promise<void>, done: (state: number) => boolean): Promise<void> {
    try {
      await action();
    } catch (err) {
      if (isConnectionLost(err) || isDomainNotFound(err)) throw err;
      if (!done((await hv.domainGetInfo(found.dom)).state)) throw err;
    }
  }

  private async snapshot(hv: Hypervisor, found: Owned): Promise<DriverWorkload> {
    const info = await hv.domainGetInfo(found.dom);
    const { state, message } = info.state === S.PAUSED && (await this.isIncoming(hv, found)) ? INCOMING : mapDomainState(info.state);
    const addresses = state === 'running' ? await this.addressesOf(found) : [];
    return { workloadId: found.owner.workloadId, name: found.owner.name, kind: 'vm', state, ref: found.uuid, ...(message ? { message } : {}), ...(addresses.length > 0 ? { addresses } : {}) };
  }

  /**
   * Whether the domain is a live migration still arriving: libvirt holds it
   * paused and transient until the move completes (it is made persistent
   * then), while every domain virtfleet makes is persistent. A VM that was
   * paused when it moved is paused and persistent once it has arrived.
   */
  private async isIncoming(hv: Hypervisor, found: Owned): Promise<boolean> {
    const arriving = await hv.connectListAllDomains(ConnectListAllDomainsFlags.TRANSIENT | ConnectListAllDomainsFlags.PAUSED);
    for (const dom of arriving) if ((await hv.domainGetUUIDString(dom)) === found.uuid) return true;
    return false;
  }

  /**
   * Points each running VM's published ports at its address, and removes
   * the rules of VMs that stopped, went or changed address. Runs with every
   * listing (each telemetry tick), so a VM's ports follow its DHCP lease.
   */
  private async publishPorts(workloads: readonly DriverWorkload[]): Promise<void> {
    const forwards: Forward[] = [];
    for (const w of workloads) {
      const address = w.addresses?.[0];
      if (w.state !== 'running' || !address) continue;
      const ports = await this.storage.ports(w.workloadId);
      if (ports.length > 0) forwards.push({ workloadId: w.workloadId, address, ports });
    }
    await this.forwarder?.sync(forwards);
  }

  /**
   * A running VM's IPv4 addresses from its networks' DHCP leases, asked of
   * libvirt at most every ADDRESS_TTL_MS per VM (telemetry looks every
   * second). None without the addon, or when the lookup fails.
   */
  private async addressesOf(found: Owned): Promise<string[]> {
    if (!this.ext.ok) return [];
    const cached = this.addresses.get(found.uuid);
    if (cached && performance.now() - cached.at < ADDRESS_TTL_MS) return cached.addresses;
    let addresses: string[] = [];
    try {
      const interfaces = JSON.parse(await this.ext.ext.domainAddresses(this.config.uri, backendName(found.owner.hostId, found.owner.workloadId))) as DomainInterface[];
      addresses = interfaces.flatMap((i) => i.addrs.filter((a) => a.type === 'ipv4').map((a) => a.addr));
    } catch (err) {
      this.log.debug({ workloadId: found.owner.workloadId, err: errorMessage(err) }, 'reading a VM\'s addresses failed');
    }
    this.addresses.set(found.uuid, { at: performance.now(), addresses });
    return addresses;
  }

  private about(): Promise<About> {
    const generation = this.conn.generation;
    if (this.aboutCache?.generation === generation) return this.aboutCache.info;
    const entry = { generation, info: this.fetchAbout() };
    this.aboutCache = entry;
    void entry.info.then((about) => {
      if (about.failed && this.aboutCache === entry) this.aboutCache = undefined;
    });
    return entry.info;
  }

  private async fetchAbout(): Promise<About> {
    if (!this.ext.ok) {
      return { version: 'unknown', hypervisorVersion: '', offeredTypes: undefined, failed: false, note: `native libvirt-ext addon unavailable, so the version is unknown and domain types are guessed (${this.ext.reason})` };
    }
    const { ext } = this.ext;
    const uri = this.config.uri;
    try {
      const [version, hypervisorVersion, capabilities] = await Promise.all([ext.getLibVersion(uri), ext.getHypervisorVersion(uri), ext.getCapabilities(uri)]);
      return { version, hypervisorVersion, offeredTypes: await parseGuestDomainTypes(capabilities), failed: false };
    } catch (err) {
      return { version: 'unknown', hypervisorVersion: '', offeredTypes: undefined, failed: true, note: `querying libvirt's version and capabilities failed: ${errorMessage(err)}` };
    }
  }

  private async newDomainType(): Promise<DomainType> {
    if (this.chosenType === undefined) {
      const { domainType, uri } = this.config;
      const about = domainType === 'auto' ? await this.about() : undefined;
      const chosen = chooseDomainType(domainType, uri, about?.offeredTypes, about?.offeredTypes ? false : await kvmDeviceUsable());
      if (about?.failed) return chosen;
      this.chosenType = chosen;
    }
    return this.kvmFailed && this.chosenType === 'kvm' ? 'qemu' : this.chosenType;
  }
}

function clip(detail: string): string {
  return detail.length <= MAX_DETAIL ? detail : `${detail.slice(0, MAX_DETAIL - 1)}…`;
}

export const createLibvirtDriver: DriverFactory<LibvirtDriverConfig> = async (config, context) => {
  const driver = new LibvirtDriver({ ...LIBVIRT_DRIVER_DEFAULTS, ...definedOnly(config) }, context);
  await driver.connect();
  return driver;
};

/** Drops undefined values, so that they do not override defaults. */
function definedOnly<T extends object>(config: T): Partial<T> {
  return Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

/** Rewrites a save image's XML so that it names the VM's files by role (savedStateFiles), ready for any host. */
async function neutralizeSavedImage(file: string, hostId: string, files: VmFiles): Promise<void> {
  const image = await readSaveImage(file);
  const roles = migrationFilesOf(files);
  await image.rewrite(retargetDomainXml(image.xml, { hostId, files: roles }, { hostId, files: savedStateFiles(Object.keys(roles)) }));
}
