import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  buildNoCloudSeed,
  catalogRefsOf,
  diskDemandGiB,
  errorMessage,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  parseCatalogRef,
  ResourceExhaustedError,
  UnavailableError,
  VirtfleetError,
  WORKLOAD_ID,
  type Logger,
  type NoCloudSeed,
  type PublishedPort,
  type WorkloadSpec,
} from '@virtfleet/shared';
import type { ImageLease, ImageProvider } from '../driver.js';

const run = promisify(execFile);
const GIB = 2 ** 30;
/** qemu-img and genisoimage are quick; a stuck one is a broken host. */
const TOOL_TIMEOUT_MS = 120_000;
/** A VM's saved memory state (a libvirt save image) in its directory. */
const SAVED_MEMORY = 'memory.save';
const MANIFEST = 'files.json';

/** A disk of a VM, in the order it is attached. */
export interface VmDisk {
  /** `root`, or the data disk's name. */
  name: string;
  path: string;
  format: 'qcow2' | 'raw';
  readonly: boolean;
}

/** The files a VM's domain refers to. */
export interface VmFiles {
  disks: VmDisk[];
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** The cloud-init NoCloud seed, attached as a CD-ROM. */
  seed?: string;
  /** Where libvirt writes the serial console. */
  consoleLog: string;
}

/** What `files.json` records: enough to re-hold the images after a restart. */
interface Manifest {
  workloadId: string;
  /** Digests of the catalog images the files stand on. */
  images: string[];
  files: VmFiles;
  /** The spec's published ports, kept with the files so they outlive an agent restart. */
  ports?: PublishedPort[];
}

/**
 * The files of each VM, in `<dir>/<workload id>/`: the root disk as a qcow2
 * overlay on the cached catalog image (grown to `disk_gib`; the image itself
 * is never written), blank qcow2 data disks, the cloud-init seed ISO, and the
 * serial console's log. `files.json` is written last, so a directory without
 * it is a preparation that did not finish and is made again from scratch.
 * The images under a VM's files are held in the image cache for as long as
 * the files exist, across agent restarts (`restore`).
 */
export class VmStorage {
  private readonly holds = new Map<string, ImageLease[]>();
  /** Manifests read or written, by workload id; telemetry asks for published ports every tick. */
  private readonly manifests = new Map<string, Manifest>();

  constructor(
    private readonly dir: string,
    private readonly images: ImageProvider | undefined,
    private readonly log: Logger,
  ) {}

  /** Takes up the VMs a previous run prepared: holds their images again. Call before any `prepare`. */
  async restore(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    if (!this.images) return;
    for (const workloadId of await readdir(this.dir)) {
      const manifest = await this.manifest(workloadId);
      if (!manifest) continue;
      const leases: ImageLease[] = [];
      for (const digest of manifest.images) {
        const lease = this.images.hold(digest);
        if (lease) leases.push(lease);
        else this.log.warn({ workloadId, digest }, 'the image under a VM\'s disks is no longer cached; the VM can run only while its disks need no base');
      }
      this.holds.set(workloadId, leases);
    }
  }

  /**
   * Makes the VM's files, or returns those already made (idempotent by
   * workload id). A failure leaves nothing behind.
   * @throws InvalidArgumentError for a spec these files cannot be made from (disk smaller than its image)
   * @throws NotFoundError when an image is not in the catalog (or no longer the pinned content)
   * @throws ResourceExhaustedError when the host's disk cannot take the VM's disks
   * @throws FailedPreconditionError when the spec needs catalog images and the agent has no image cache
   */
  async prepare(workloadId: string, spec: WorkloadSpec): Promise<VmFiles> {
    const dir = this.workloadDir(workloadId);
    const existing = await this.manifest(workloadId);
    if (existing) return existing.files;
    await rm(dir, { recursive: true, force: true });
    await this.releaseHolds(workloadId);
    this.manifests.delete(workloadId);

    const leases = new Map<string, ImageLease>();
    try {
      for (const { field, ref } of catalogRefsOf(spec)) {
        if (!this.images) throw new FailedPreconditionError(`spec.${field} names a catalog image, and this agent has no image cache`);
        const parsed = parseCatalogRef(ref)!;
        try {
          leases.set(field, await this.images.acquire(parsed));
        } catch (err) {
          if (err instanceof NotFoundError) throw new NotFoundError('image', `${ref} (spec.${field})`, { cause: err });
          throw err;
        }
      }
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await this.requireSpace(diskDemandGiB(spec) * GIB);

      const disks: VmDisk[] = [];
      const root = leases.get('image');
      if (root) {
        const path = join(dir, 'root.qcow2');
        const base = root.image;
        const size = spec.disk_gib > 0 ? spec.disk_gib * GIB : undefined;
        if (size !== undefined) {
          const virtual = await virtualSize(base.path, base.format);
          if (size < virtual) throw new InvalidArgumentError('spec.disk_gib', `${spec.disk_gib} GiB is smaller than image ${base.name}'s ${(virtual / GIB).toFixed(2)} GiB; use at least ${Math.ceil(virtual / GIB)}, or 0 for the image's own size`);
        }
        await tool('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', base.format, '-b', base.path, path, ...(size !== undefined ? [String(size)] : [])]);
        disks.push({ name: 'root', path, format: 'qcow2', readonly: false });
      } else if (spec.image.startsWith('/')) {
        disks.push({ name: 'root', path: spec.image, format: spec.image.endsWith('.qcow2') ? 'qcow2' : 'raw', readonly: false });
      }
      for (const d of spec.disks ?? []) {
        const path = join(dir, `disk-${d.name}.qcow2`);
        await tool('qemu-img', ['create', '-q', '-f', 'qcow2', path, String(d.size_gib * GIB)]);
        disks.push({ name: d.name, path, format: 'qcow2', readonly: false });
      }

      const files: VmFiles = { disks, consoleLog: join(dir, 'console.log') };
      const kernel = leases.get('boot.kernel');
      if (kernel) {
        files.kernel = kernel.image.path;
        const initrd = leases.get('boot.initrd');
        if (initrd) files.initrd = initrd.image.path;
        if (spec.boot?.cmdline) files.cmdline = spec.boot.cmdline;
      }
      if (spec.cloud_init) files.seed = await makeSeed(dir, buildNoCloudSeed(spec.cloud_init, workloadId, spec.name));

      const manifest: Manifest = { workloadId, images: [...leases.values()].map((l) => l.image.digest), files, ...(spec.ports ? { ports: spec.ports } : {}) };
      await writeFile(join(dir, MANIFEST), JSON.stringify(manifest), { mode: 0o644 });
      this.manifests.set(workloadId, manifest);
      this.holds.set(workloadId, [...leases.values()]);
      return files;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      for (const lease of leases.values()) await lease.release();
      throw asStorageError(err);
    }
  }

  /**
   * The disks that are this VM's own (in its directory), by role `disk:NAME`:
   * what a cold migration carries. A disk by path elsewhere is shared storage.
   */
  async ownDisks(workloadId: string): Promise<Record<string, string>> {
    const files = await this.files(workloadId);
    const dir = this.workloadDir(workloadId);
    return Object.fromEntries((files?.disks ?? []).filter((d) => d.path.startsWith(`${dir}/`)).map((d) => [`disk:${d.name}`, d.path]));
  }

  /**
   * Makes the VM's files (as prepare does) with its own disks taken from
   * `received` (by role, as ownDisks names them on the host they come from):
   * each is moved into place, and an overlay is pointed at this host's copy
   * of its catalog image. All or nothing, like prepare.
   * @throws InvalidArgumentError when a disk is missing from `received` or a role names no disk of the spec
   */
  async adoptDisks(workloadId: string, spec: WorkloadSpec, received: Record<string, string>): Promise<VmFiles> {
    const files = await this.prepare(workloadId, spec);
    try {
      const own = await this.ownDisks(workloadId);
      const unknown = Object.keys(received).filter((role) => !(role in own));
      if (unknown.length > 0) throw new InvalidArgumentError('files', `${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a disk of this VM (it has ${Object.keys(own).join(', ') || 'none'})`);
      for (const [role, path] of Object.entries(own)) {
        const source = received[role];
        if (source === undefined) throw new InvalidArgumentError('files', `${role} is missing`);
        const backing = await backingOf(path);
        await moveFile(source, path);
        if (backing) await tool('qemu-img', ['rebase', '-u', '-f', 'qcow2', '-F', backing.format, '-b', backing.path, path]);
      }
      return files;
    } catch (err) {
      await this.remove(workloadId);
      throw asStorageError(err);
    }
  }

  /**
   * Where the VM's memory state waits while it is saved (for a cold
   * migration, or received with it): start resumes from it.
   */
  savedMemoryPath(workloadId: string): string {
    return join(this.workloadDir(workloadId), SAVED_MEMORY);
  }

  /** Moves a received memory image to where start resumes the VM from it. */
  async keepSavedMemory(workloadId: string, from: string): Promise<void> {
    await moveFile(from, this.savedMemoryPath(workloadId));
  }

  /** The files of a prepared VM, or undefined. */
  async files(workloadId: string): Promise<VmFiles | undefined> {
    return (await this.manifest(workloadId))?.files;
  }

  /** The ports a prepared VM publishes; none when it publishes none or has no files. */
  async ports(workloadId: string): Promise<PublishedPort[]> {
    return (await this.manifest(workloadId))?.ports ?? [];
  }

  /** Removes the VM's files (never a catalog image) and lets its images be evicted. Removing absent files succeeds. */
  async remove(workloadId: string): Promise<void> {
    if (!WORKLOAD_ID.test(workloadId)) return; // no such id can have files
    this.manifests.delete(workloadId);
    await rm(this.workloadDir(workloadId), { recursive: true, force: true });
    await this.releaseHolds(workloadId);
  }

  private workloadDir(workloadId: string): string {
    // The id becomes a path component: it must be one, and nothing else.
    if (!WORKLOAD_ID.test(workloadId)) throw new InvalidArgumentError('workload_id', 'must be 1-80 characters of a-z, 0-9 and "-"');
    return join(this.dir, workloadId);
  }

  /** A VM's manifest, read once: only this agent writes its directory, and a manifest never changes once written. */
  private async manifest(workloadId: string): Promise<Manifest | undefined> {
    if (!WORKLOAD_ID.test(workloadId)) return undefined;
    const known = this.manifests.get(workloadId);
    if (known) return known;
    try {
      const manifest = JSON.parse(await readFile(join(this.dir, workloadId, MANIFEST), 'utf8')) as Manifest;
      if (manifest.workloadId !== workloadId) return undefined;
      this.manifests.set(workloadId, manifest);
      return manifest;
    } catch {
      return undefined;
    }
  }

  private async releaseHolds(workloadId: string): Promise<void> {
    const leases = this.holds.get(workloadId) ?? [];
    this.holds.delete(workloadId);
    for (const lease of leases) await lease.release();
  }

  /** Thin qcow2 files take little at first; the whole size is asked for because a guest may fill them. */
  private async requireSpace(bytes: number): Promise<void> {
    if (bytes === 0) return;
    const fs = await statfs(this.dir);
    const free = fs.bavail * fs.bsize;
    if (bytes > free) throw new ResourceExhaustedError(`the VM's disks need ${(bytes / GIB).toFixed(1)} GiB and ${this.dir} has ${(free / GIB).toFixed(1)} GiB free`);
  }
}

async function tool(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(command, args, { timeout: TOOL_TIMEOUT_MS, maxBuffer: 4 * 2 ** 20 });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new UnavailableError(`${command} is not installed on this host`, { cause: err });
    const detail = (e.stderr ?? '').trim() || errorMessage(err);
    if (/No space left on device/i.test(detail)) throw new ResourceExhaustedError(`${command}: the host's disk is full: ${detail}`, { cause: err });
    throw new InternalError(`${command} failed: ${detail}`, { cause: err });
  }
}

/** The image a qcow2 file stands on, if any (its path and format, as qemu-img reports them). */
async function backingOf(path: string): Promise<{ path: string; format: string } | undefined> {
  const info = JSON.parse(await tool('qemu-img', ['info', '--output=json', '-U', '-f', 'qcow2', path])) as { 'backing-filename'?: unknown; 'backing-filename-format'?: unknown };
  const backing = info['backing-filename'];
  if (typeof backing !== 'string' || backing === '') return undefined;
  const format = info['backing-filename-format'];
  return { path: backing, format: typeof format === 'string' ? format : 'raw' };
}

/** Moves a file, copying it when it is on another file system. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}

async function virtualSize(path: string, format: string): Promise<number> {
  const info = JSON.parse(await tool('qemu-img', ['info', '--output=json', '-f', format, path])) as { 'virtual-size'?: unknown };
  const size = info['virtual-size'];
  if (typeof size !== 'number') throw new InternalError(`qemu-img info gave no virtual size for ${path}`);
  return size;
}

async function makeSeed(dir: string, seed: NoCloudSeed): Promise<string> {
  const staging = join(dir, 'seed');
  await mkdir(staging, { mode: 0o700 });
  const files: string[] = [];
  for (const [name, content] of Object.entries(seed)) {
    if (content === undefined) continue;
    await writeFile(join(staging, name), content, { mode: 0o600 });
    files.push(join(staging, name));
  }
  const iso = join(dir, 'seed.iso');
  await tool('genisoimage', ['-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', ...files]);
  await rm(staging, { recursive: true, force: true });
  return iso;
}

function asStorageError(err: unknown): unknown {
  if (err instanceof VirtfleetError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new ResourceExhaustedError(`the host's disk is full: ${errorMessage(err)}`, { cause: err });
  return new InternalError(`preparing the VM's files failed: ${errorMessage(err)}`, { cause: err });
}
