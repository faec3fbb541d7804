import { DNS_LABEL, InvalidArgumentError, WORKLOAD_ID, errorMessage, parseCatalogRef, type WorkloadSpec } from '@virtfleet/shared';
import { Builder, parseStringPromise } from 'xml2js';
import { backendName } from '../driver.js';
import type { VmFiles } from './vm-storage.js';

const SAFE_PATH = /^\/[A-Za-z0-9._+/-]+$/;

/** Namespace of the metadata element that marks a domain as a virtfleet workload. */
export const VIRTFLEET_XMLNS = 'https://virtfleet.dev/xmlns/domain/v1';
const PREFIX = 'virtfleet';

/** The `type` attribute of `<domain>`: hardware virtualisation, emulation, or libvirt's test driver. */
export type DomainType = 'kvm' | 'qemu' | 'test';

/** Who a domain belongs to, as recorded in its metadata. */
export interface DomainOwnership {
  hostId: string;
  workloadId: string;
  /** The workload's name from its spec. */
  name: string;
}

const builder = new Builder({ headless: true, renderOpts: { pretty: false } });

/** Disk targets in attachment order: vda is the root disk (or the first data disk). */
const diskTarget = (index: number): string => `vd${String.fromCharCode('a'.charCodeAt(0) + index)}`;

/** The `<devices>` of a domain with these files: virtio disks, the seed as a SCSI CD-ROM, a serial console logged to a file. */
function devicesOf(files: VmFiles, network: string | undefined): Record<string, unknown> {
  const disks: Record<string, unknown>[] = files.disks.map((d, i) => ({
    $: { type: 'file', device: 'disk' },
    driver: { $: { name: 'qemu', type: d.format } },
    source: { $: { file: d.path } },
    target: { $: { dev: diskTarget(i), bus: 'virtio' } },
    ...(d.readonly ? { readonly: '' } : {}),
  }));
  if (files.seed) {
    disks.push({
      $: { type: 'file', device: 'cdrom' },
      driver: { $: { name: 'qemu', type: 'raw' } },
      source: { $: { file: files.seed } },
      target: { $: { dev: 'sda', bus: 'scsi' } },
      readonly: '',
    });
  }
  return {
    ...(disks.length > 0 ? { disk: disks } : {}),
    ...(files.seed ? { controller: { $: { type: 'scsi', model: 'virtio-scsi', index: '0' } } } : {}),
    ...(network ? { interface: { $: { type: 'network' }, source: { $: { network } }, model: { $: { type: 'virtio' } } } } : {}),
    // A pty for interactive use, its output also in a log file that virtlogd writes and rotates.
    serial: { $: { type: 'pty' }, log: { $: { file: files.consoleLog, append: 'on' } }, target: { $: { port: '0' } } },
    console: { $: { type: 'pty' }, target: { $: { type: 'serial', port: '0' } } },
  };
}

/**
 * Builds the XML that defines a workload's domain. Every value goes through the
 * XML builder, which escapes it; ids and names are also re-validated here
 * because they end up as the domain name. `files` are the disks, kernel,
 * seed and console log VmStorage made; without them, a VM by path as before.
 * `network` is the libvirt network its one NIC joins, if any.
 * @throws InvalidArgumentError when the id, name or image is unusable.
 */
export function buildDomainXml(workloadId: string, spec: WorkloadSpec, hostId: string, domainType: DomainType, files?: VmFiles, network?: string): string {
  if (!WORKLOAD_ID.test(workloadId)) throw new InvalidArgumentError('workload_id', 'must be 1-80 characters of a-z, 0-9 and "-", starting and ending with a letter or digit');
  if (!DNS_LABEL.test(spec.name)) throw new InvalidArgumentError('spec.name', 'must be a DNS label: 1-63 characters of a-z, 0-9 and "-"');
  if (spec.kind !== 'vm') throw new InvalidArgumentError('spec.kind', 'the libvirt driver runs vms only');
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1) throw new InvalidArgumentError('spec.vcpus', 'must be a whole number of at least 1');
  if (!Number.isInteger(spec.memory_mib) || spec.memory_mib < 1) throw new InvalidArgumentError('spec.memory_mib', 'must be a whole number of at least 1');
  if (spec.image && !spec.image.startsWith('/') && !parseCatalogRef(spec.image))
    throw new InvalidArgumentError('spec.image', 'must be a catalog image (NAME or NAME@sha256:HEX) or an absolute disk image path');
  for (const path of [...(files?.disks.map((d) => d.path) ?? []), files?.kernel, files?.initrd, files?.seed, files?.consoleLog]) {
    if (path !== undefined && !SAFE_PATH.test(path)) throw new InvalidArgumentError('spec', `a VM file path ${JSON.stringify(path)} is not an absolute path of letters, digits and ._+-/`);
  }

  const labels = Object.entries(spec.labels).map(([key, value]) => ({ $: { key }, _: value }));
  const domain = {
    $: { type: domainType },
    name: backendName(hostId, workloadId),
    metadata: {
      [`${PREFIX}:workload`]: {
        $: { [`xmlns:${PREFIX}`]: VIRTFLEET_XMLNS },
        [`${PREFIX}:host-id`]: hostId,
        [`${PREFIX}:workload-id`]: workloadId,
        [`${PREFIX}:name`]: spec.name,
        ...(labels.length > 0 ? { [`${PREFIX}:labels`]: { [`${PREFIX}:label`]: labels } } : {}),
      },
    },
    memory: { $: { unit: 'MiB' }, _: String(spec.memory_mib) },
    vcpu: String(spec.vcpus),
    os: {
      type: { $: { arch: 'x86_64' }, _: 'hvm' },
      ...(files?.kernel ? { kernel: files.kernel, ...(files.initrd ? { initrd: files.initrd } : {}), ...(files.cmdline ? { cmdline: files.cmdline } : {}) } : {}),
    },
    on_poweroff: 'destroy',
    // An <interface> only on the host network the spec names: otherwise guests get no network at all.
    ...(files
      ? { devices: devicesOf(files, network) }
      : spec.image.startsWith('/')
      ? {
          devices: {
            disk: {
              $: { type: 'file', device: 'disk' },
              driver: { $: { name: 'qemu', type: spec.image.endsWith('.qcow2') ? 'qcow2' : 'raw' } },
              source: { $: { file: spec.image } },
              target: { $: { dev: 'vda', bus: 'virtio' } },
            },
          },
        }
      : {}),
  };
  try {
    return builder.buildObject({ domain });
  } catch (err) {
    // xmlbuilder refuses characters XML cannot carry, such as control characters.
    throw new InvalidArgumentError('spec', `cannot be written as domain XML: ${errorMessage(err)}`, { cause: err });
  }
}

// Shapes produced by xml2js with `xmlns: true`: every element carries its namespace in `$ns`.
interface XmlElement {
  $ns?: { uri: string; local: string };
  _?: string;
  [child: string]: unknown;
}

function children(parent: XmlElement | undefined, uri: string, local: string): XmlElement[] {
  if (!parent) return [];
  const found: XmlElement[] = [];
  for (const [key, value] of Object.entries(parent)) {
    if (key === '$' || key === '$ns' || key === '_' || !Array.isArray(value)) continue;
    for (const item of value as unknown[]) {
      const element: XmlElement = typeof item === 'string' ? { _: item } : (item as XmlElement);
      const ns = element.$ns ?? { uri: '', local: key };
      if (ns.uri === uri && ns.local === local) found.push(element);
    }
  }
  return found;
}

function text(parent: XmlElement | undefined, uri: string, local: string): string | undefined {
  const value = children(parent, uri, local)[0]?._;
  return typeof value === 'string' && value !== '' ? value : undefined;
}

async function parseXml(xml: string): Promise<XmlElement | undefined> {
  try {
    const root = (await parseStringPromise(xml, { xmlns: true, explicitArray: true })) as Record<string, XmlElement> | null;
    // A parent for the root element, so that it is found like any other child.
    return root ? Object.fromEntries(Object.entries(root).map(([key, element]) => [key, [element]])) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads the virtfleet metadata from a domain's XML. Returns undefined when the
 * domain carries none, or carries something that is not a well-formed record
 * (a domain someone else defined, or a hand-edited one).
 */
export async function parseOwnership(xml: string): Promise<DomainOwnership | undefined> {
  const document = await parseXml(xml);
  const domain = children(document, '', 'domain')[0];
  const metadata = children(domain, '', 'metadata')[0];
  const record = children(metadata, VIRTFLEET_XMLNS, 'workload')[0];
  const hostId = text(record, VIRTFLEET_XMLNS, 'host-id');
  const workloadId = text(record, VIRTFLEET_XMLNS, 'workload-id');
  const name = text(record, VIRTFLEET_XMLNS, 'name');
  if (hostId === undefined || workloadId === undefined || name === undefined) return undefined;
  if (!WORKLOAD_ID.test(workloadId) || !DNS_LABEL.test(name)) return undefined;
  return { hostId, workloadId, name };
}

/**
 * The domain types libvirt's capabilities XML offers for x86_64 hvm guests,
 * such as ['qemu', 'kvm']. Empty when the XML lists none or cannot be parsed.
 */
export async function parseGuestDomainTypes(capabilitiesXml: string, arch = 'x86_64'): Promise<string[]> {
  const document = await parseXml(capabilitiesXml);
  const capabilities = children(document, '', 'capabilities')[0];
  const types = new Set<string>();
  for (const guest of children(capabilities, '', 'guest')) {
    if (text(guest, '', 'os_type') !== 'hvm') continue;
    for (const archElement of children(guest, '', 'arch')) {
      const name = (archElement.$ as Record<string, { value: string }> | undefined)?.name?.value;
      if (name !== arch) continue;
      for (const domain of children(archElement, '', 'domain')) {
        const type = (domain.$ as Record<string, { value: string }> | undefined)?.type?.value;
        if (type) types.add(type);
      }
    }
  }
  return [...types];
}

/** A VM's files by role, as a migration names them on both hosts: `disk:NAME`, `kernel`, `initrd`, `seed`, `console-log`. */
export function migrationFilesOf(files: VmFiles): Record<string, string> {
  const roles: Record<string, string> = { 'console-log': files.consoleLog };
  for (const d of files.disks) roles[`disk:${d.name}`] = d.path;
  if (files.kernel) roles.kernel = files.kernel;
  if (files.initrd) roles.initrd = files.initrd;
  if (files.seed) roles.seed = files.seed;
  return roles;
}

/** The target devices of a VM's writable disks: what a migration without shared storage copies. */
export function writableDiskTargets(files: VmFiles): string[] {
  return files.disks.flatMap((d, i) => (d.readonly ? [] : [diskTarget(i)]));
}

const escapeXmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A running domain's XML (as libvirt gives it for migration) rewritten for
 * the target host: each file's path replaced by the target's path for the
 * same role, and the owning host in virtfleet's metadata changed. Paths only
 * ever appear as whole attribute values or element texts, so only those are
 * replaced.
 * @throws InvalidArgumentError when a target path is unsafe or a role has no target path
 */
export function retargetDomainXml(xml: string, from: { hostId: string; files: Record<string, string> }, to: { hostId: string; files: Record<string, string> }): string {
  let out = xml;
  for (const [role, source] of Object.entries(from.files)) {
    const target = to.files[role];
    if (target === undefined) throw new InvalidArgumentError(`target.files`, `has no path for ${role}`);
    if (!SAFE_PATH.test(target)) throw new InvalidArgumentError(`target.files`, `${role} path ${JSON.stringify(target)} is not an absolute path of letters, digits and ._+-/`);
    for (const [open, close] of [["'", "'"], ['"', '"'], ['>', '<']] as const) out = out.split(`${open}${source}${close}`).join(`${open}${target}${close}`);
  }
  const hostIdElement = new RegExp(`(<${PREFIX}:host-id>)[^<]*(</${PREFIX}:host-id>)`);
  if (!hostIdElement.test(out)) throw new InvalidArgumentError('domain', 'carries no virtfleet host-id metadata');
  return out.replace(hostIdElement, `$1${escapeXmlText(to.hostId)}$2`);
}

/** The role of a VM's saved memory state among its exported files. */
export const MEMORY_ROLE = 'memory';

/**
 * The paths a saved memory image's XML names a VM's files by while the image
 * travels between hosts: one per role, a path that exists on no host, so
 * that the receiving host replaces each by its own (retargetDomainXml).
 */
export function savedStateFiles(roles: Iterable<string>): Record<string, string> {
  return Object.fromEntries([...roles].map((role) => [role, `/virtfleet-saved-state/${role.replace(':', '/')}`]));
}

/**
 * A domain's XML under another identity: libvirt's name and UUID and
 * virtfleet's metadata (workload id and name), for a memory image restored
 * as another workload or on another host.
 * @throws InvalidArgumentError when the XML lacks one of them
 */
export function relabelDomainXml(xml: string, to: { name: string; uuid: string; workloadId: string; workloadName: string }): string {
  const replacements: [RegExp, string, string][] = [
    [/(<name>)[^<]*(<\/name>)/, to.name, 'name'],
    [/(<uuid>)[^<]*(<\/uuid>)/, to.uuid, 'uuid'],
    [new RegExp(`(<${PREFIX}:workload-id>)[^<]*(</${PREFIX}:workload-id>)`), to.workloadId, 'workload-id metadata'],
    [new RegExp(`(<${PREFIX}:name>)[^<]*(</${PREFIX}:name>)`), to.workloadName, 'name metadata'],
  ];
  let out = xml;
  for (const [pattern, value, what] of replacements) {
    if (!pattern.test(out)) throw new InvalidArgumentError('domain', `carries no ${what}`);
    out = out.replace(pattern, (_m, open: string, close: string) => `${open}${escapeXmlText(value)}${close}`);
  }
  return out;
}

/**
 * The `<domainbackup>` (push mode) that has libvirt write the VM's own disks
 * (`ownRoles`, as VmStorage.ownDisks names them) into `dir` as qcow2 files,
 * and skips the others (shared disks, the seed). Answers the XML and the file
 * each role goes to.
 * @throws InvalidArgumentError when `dir` is not a safe absolute path
 */
export function domainBackupXml(files: VmFiles, ownRoles: ReadonlySet<string>, dir: string): { xml: string; targets: Record<string, string> } {
  if (!SAFE_PATH.test(dir)) throw new InvalidArgumentError('dir', `${JSON.stringify(dir)} is not an absolute path of letters, digits and ._+-/`);
  const targets: Record<string, string> = {};
  const disks: Record<string, unknown>[] = files.disks.map((d, i) => {
    const role = `disk:${d.name}`;
    if (d.readonly || !ownRoles.has(role)) return { $: { name: diskTarget(i), backup: 'no' } };
    const target = `${dir}/disk-${d.name}.qcow2`;
    targets[role] = target;
    return { $: { name: diskTarget(i), backup: 'yes', type: 'file' }, driver: { $: { type: 'qcow2' } }, target: { $: { file: target } } };
  });
  if (files.seed) disks.push({ $: { name: 'sda', backup: 'no' } });
  return { xml: builder.buildObject({ domainbackup: { $: { mode: 'push' }, disks: { disk: disks } } }), targets };
}
