import { InvalidArgumentError, parseWorkloadSpec, type WorkloadSpec } from '@virtfleet/shared';
import { parseStringPromise } from 'xml2js';
import { describe, expect, it } from 'vitest';
import { VIRTFLEET_XMLNS, buildDomainXml, parseGuestDomainTypes, parseOwnership, relabelDomainXml, retargetDomainXml, savedStateFiles } from './domain-xml.js';
import type { VmFiles } from './vm-storage.js';

const HOSTILE = `a'"<>&`;
const baseSpec: WorkloadSpec = parseWorkloadSpec({ name: 'web', kind: 'vm', vcpus: 2, memory_mib: 64 });
const spec = (overrides: Partial<WorkloadSpec>): WorkloadSpec => ({ ...baseSpec, ...overrides });

/** Parses without namespace handling, to look at the XML as libvirt's own parser would. */
async function plain(xml: string): Promise<{ domain: Record<string, unknown[]> & { $: Record<string, string> } }> {
  return (await parseStringPromise(xml)) as { domain: Record<string, unknown[]> & { $: Record<string, string> } };
}

describe('buildDomainXml', () => {
  it('describes a diskless VM with no network', async () => {
    const xml = buildDomainXml('web-0a1b2c3d', baseSpec, 'host-1', 'kvm');
    const { domain } = await plain(xml);
    expect(domain.$.type).toBe('kvm');
    expect(domain.name).toEqual(['virtfleet-host-1.web-0a1b2c3d']);
    expect(domain.memory).toEqual([{ _: '64', $: { unit: 'MiB' } }]);
    expect(domain.vcpu).toEqual(['2']);
    expect(domain.os).toEqual([{ type: [{ _: 'hvm', $: { arch: 'x86_64' } }] }]);
    expect(domain.on_poweroff).toEqual(['destroy']);
    expect(domain.devices, 'a spec without image has no devices at all').toBeUndefined();
    expect(xml).not.toContain('<interface');
  });

  it.each([
    { name: 'qcow2 image', image: '/var/lib/virtfleet/disks/web.qcow2', driverType: 'qcow2' },
    { name: 'raw image', image: '/var/lib/virtfleet/disks/web.img', driverType: 'raw' },
    { name: 'image without extension', image: '/dev/vg0/web', driverType: 'raw' },
  ])('adds a virtio disk for a $name', async ({ image, driverType }) => {
    const { domain } = await plain(buildDomainXml('web-1', spec({ image }), 'host-1', 'qemu'));
    expect(domain.devices).toEqual([
      {
        disk: [
          {
            $: { type: 'file', device: 'disk' },
            driver: [{ $: { name: 'qemu', type: driverType } }],
            source: [{ $: { file: image } }],
            target: [{ $: { dev: 'vda', bus: 'virtio' } }],
          },
        ],
      },
    ]);
    expect(JSON.stringify(domain.devices)).not.toContain('interface');
  });

  it.each<{ name: string; hostId: string; labels: Record<string, string> }>([
    { name: 'hostile host id', hostId: HOSTILE, labels: {} },
    { name: 'hostile label values', hostId: 'host-1', labels: { team: HOSTILE, 'app.kubernetes.io/name': '</virtfleet:workload></metadata><devices><interface type="network"/></devices>' } },
    { name: 'markup in the host id', hostId: '</virtfleet:host-id><virtfleet:host-id>other', labels: { x: ']]><!-- -->' } },
    { name: 'non-ASCII values', hostId: 'hôte-☃', labels: { emoji: '🚀 "quoted" & \'single\'' } },
  ])('escapes a $name so it round-trips as data', async ({ hostId, labels }) => {
    const xml = buildDomainXml('web-1', spec({ labels }), hostId, 'test');
    const { domain } = await plain(xml);
    expect(domain.name, 'exactly one <name>').toEqual([`virtfleet-${hostId}.web-1`]);
    expect(domain.devices, 'no element was injected').toBeUndefined();
    expect(await parseOwnership(xml)).toEqual({ hostId, workloadId: 'web-1', name: 'web' });
    const record = ((domain.metadata?.[0] as Record<string, unknown[]>)['virtfleet:workload']?.[0] ?? {}) as Record<string, unknown[]>;
    const stored = (record['virtfleet:labels']?.[0] as Record<string, { _: string; $: { key: string } }[]> | undefined)?.['virtfleet:label'] ?? [];
    expect(Object.fromEntries(stored.map((l) => [l.$.key, l._]))).toEqual(labels);
  });

  it.each([
    { name: 'markup in the name', workloadId: 'web-1', spec: spec({ name: 'x</name><devices>' }), field: 'spec.name' },
    { name: 'upper case name', workloadId: 'web-1', spec: spec({ name: 'Web' }), field: 'spec.name' },
    { name: 'empty name', workloadId: 'web-1', spec: spec({ name: '' }), field: 'spec.name' },
    { name: 'name with a quote', workloadId: 'web-1', spec: spec({ name: "a'b" }), field: 'spec.name' },
    { name: 'markup in the workload id', workloadId: 'x</name><devices>', spec: baseSpec, field: 'workload_id' },
    { name: 'workload id with a slash', workloadId: 'a/b', spec: baseSpec, field: 'workload_id' },
    { name: 'workload id too long', workloadId: 'a'.repeat(81), spec: baseSpec, field: 'workload_id' },
    { name: 'container kind', workloadId: 'web-1', spec: spec({ kind: 'container', image: 'busybox' }), field: 'spec.kind' },
    { name: 'fractional vcpus', workloadId: 'web-1', spec: spec({ vcpus: 0.5 }), field: 'spec.vcpus' },
    { name: 'relative image path', workloadId: 'web-1', spec: spec({ image: 'images/disk.img' }), field: 'spec.image' },
    { name: 'control character in a label', workloadId: 'web-1', spec: spec({ labels: { x: 'bell\u0007' } }), field: 'spec' },
  ])('rejects a $name with InvalidArgumentError on $field', ({ workloadId, spec: s, field }) => {
    const build = () => buildDomainXml(workloadId, s, 'host-1', 'kvm');
    expect(build).toThrow(InvalidArgumentError);
    expect(build).toThrow(expect.objectContaining({ field }));
  });

  const files: VmFiles = {
    disks: [
      { name: 'root', path: '/vms/w-1/root.qcow2', format: 'qcow2', readonly: false },
      { name: 'data', path: '/vms/w-1/disk-data.qcow2', format: 'qcow2', readonly: false },
    ],
    kernel: '/cache/aaa',
    initrd: '/cache/bbb',
    cmdline: `console=ttyS0 x=${HOSTILE}`,
    seed: '/vms/w-1/seed.iso',
    consoleLog: '/vms/w-1/console.log',
  };

  it('attaches a VM\'s files: virtio disks in order, the seed as a virtio-scsi CD-ROM, direct kernel boot, a logged serial console', async () => {
    const { domain } = await plain(buildDomainXml('w-1', spec({ image: `disk@sha256:${'a'.repeat(64)}` }), 'host-1', 'qemu', files));
    expect(domain.os).toEqual([{ type: [{ _: 'hvm', $: { arch: 'x86_64' } }], kernel: ['/cache/aaa'], initrd: ['/cache/bbb'], cmdline: [`console=ttyS0 x=${HOSTILE}`] }]);
    const devices = domain.devices![0] as Record<string, { $: Record<string, string>; source?: { $: Record<string, string> }[]; target: { $: Record<string, string> }[]; log?: { $: Record<string, string> }[] }[]>;
    expect(devices.disk!.map((d) => [d.$.device, d.source![0]!.$.file, d.target[0]!.$])).toEqual([
      ['disk', '/vms/w-1/root.qcow2', { dev: 'vda', bus: 'virtio' }],
      ['disk', '/vms/w-1/disk-data.qcow2', { dev: 'vdb', bus: 'virtio' }],
      ['cdrom', '/vms/w-1/seed.iso', { dev: 'sda', bus: 'scsi' }],
    ]);
    expect(devices.controller!.map((c) => c.$)).toEqual([{ type: 'scsi', model: 'virtio-scsi', index: '0' }]);
    expect(devices.serial![0]!.log![0]!.$).toEqual({ file: '/vms/w-1/console.log', append: 'on' });
    expect(devices.interface, 'no network asked: no NIC').toBeUndefined();
  });

  it('gives a VM one virtio NIC on the host network it joins', async () => {
    const { domain } = await plain(buildDomainXml('w-1', baseSpec, 'host-1', 'qemu', files, 'virtfleet-default'));
    const devices = domain.devices![0] as Record<string, unknown[]>;
    expect(devices.interface).toEqual([{ $: { type: 'network' }, source: [{ $: { network: 'virtfleet-default' } }], model: [{ $: { type: 'virtio' } }] }]);
  });

  it.each([
    { name: 'a disk path with a quote', files: { ...files, disks: [{ name: 'root', path: "/vms/x'/root.qcow2", format: 'qcow2' as const, readonly: false }] } },
    { name: 'a relative console log', files: { ...files, consoleLog: 'console.log' } },
  ])('refuses $name among the files', ({ files: f }) => {
    expect(() => buildDomainXml('w-1', baseSpec, 'host-1', 'qemu', f)).toThrow(InvalidArgumentError);
  });
});

describe('parseOwnership', () => {
  const record = (body: string, ns = VIRTFLEET_XMLNS, prefix = 'vf') =>
    `<domain type='kvm'><name>virtfleet-web-1</name><metadata><${prefix}:workload xmlns:${prefix}="${ns}">${body}</${prefix}:workload></metadata></domain>`;
  const full = '<vf:host-id>h1</vf:host-id><vf:workload-id>web-1</vf:workload-id><vf:name>web</vf:name>';

  it.each([
    { name: 'our own record', xml: record(full), want: { hostId: 'h1', workloadId: 'web-1', name: 'web' } },
    {
      name: 'a record under another prefix, as libvirt may rewrite it',
      xml: record('<x:host-id>h1</x:host-id><x:workload-id>web-1</x:workload-id><x:name>web</x:name>', VIRTFLEET_XMLNS, 'x'),
      want: { hostId: 'h1', workloadId: 'web-1', name: 'web' },
    },
    {
      name: 'a record beside other applications’ metadata',
      xml: `<domain><metadata><app:info xmlns:app="urn:other"><app:host-id>evil</app:host-id></app:info>${record(full).match(/<vf:workload.*<\/vf:workload>/)?.[0] ?? ''}</metadata></domain>`,
      want: { hostId: 'h1', workloadId: 'web-1', name: 'web' },
    },
    { name: 'escaped values', xml: record('<vf:host-id>a&apos;&quot;&lt;&gt;&amp;</vf:host-id><vf:workload-id>web-1</vf:workload-id><vf:name>web</vf:name>'), want: { hostId: HOSTILE, workloadId: 'web-1', name: 'web' } },
    { name: 'no metadata', xml: "<domain type='kvm'><name>virtfleet-web-1</name></domain>", want: undefined },
    { name: 'another namespace', xml: record(full.replaceAll('vf:', 'o:'), 'urn:other', 'o'), want: undefined },
    { name: 'unprefixed elements outside the namespace', xml: "<domain><metadata><workload><host-id>h1</host-id><workload-id>web-1</workload-id><name>web</name></workload></metadata></domain>", want: undefined },
    { name: 'a missing host id', xml: record('<vf:workload-id>web-1</vf:workload-id><vf:name>web</vf:name>'), want: undefined },
    { name: 'an empty host id', xml: record('<vf:host-id></vf:host-id><vf:workload-id>web-1</vf:workload-id><vf:name>web</vf:name>'), want: undefined },
    { name: 'an invalid workload id', xml: record('<vf:host-id>h1</vf:host-id><vf:workload-id>../x</vf:workload-id><vf:name>web</vf:name>'), want: undefined },
    { name: 'an invalid name', xml: record('<vf:host-id>h1</vf:host-id><vf:workload-id>web-1</vf:workload-id><vf:name>&lt;b&gt;</vf:name>'), want: undefined },
    { name: 'malformed XML', xml: '<domain><metadata>', want: undefined },
    { name: 'an empty string', xml: '', want: undefined },
    { name: 'a different root element', xml: `<network>${record(full)}</network>`, want: undefined },
  ])('reads $name', async ({ xml, want }) => {
    expect(await parseOwnership(xml)).toEqual(want);
  });

  it.each([
    { hostId: 'h1', workloadId: 'web-0a1b2c3d', name: 'web' },
    { hostId: HOSTILE, workloadId: 'a', name: 'a' },
    { hostId: ' spaced ', workloadId: 'x'.repeat(80), name: 'n'.repeat(63) },
  ])('round-trips $hostId / $workloadId through buildDomainXml', async (want) => {
    expect(await parseOwnership(buildDomainXml(want.workloadId, spec({ name: want.name }), want.hostId, 'qemu'))).toEqual(want);
  });
});

describe('parseGuestDomainTypes', () => {
  const guest = (osType: string, arch: string, types: string[]) =>
    `<guest><os_type>${osType}</os_type><arch name='${arch}'><wordsize>64</wordsize>${types.map((t) => `<domain type='${t}'/>`).join('')}</arch></guest>`;
  const caps = (...guests: string[]) => `<capabilities><host><cpu><arch>x86_64</arch></cpu></host>${guests.join('')}</capabilities>`;

  it.each([
    { name: 'qemu with kvm', xml: caps(guest('hvm', 'i686', ['qemu', 'kvm']), guest('hvm', 'x86_64', ['qemu', 'kvm'])), want: ['qemu', 'kvm'] },
    { name: 'qemu without kvm', xml: caps(guest('hvm', 'x86_64', ['qemu'])), want: ['qemu'] },
    { name: 'only other architectures', xml: caps(guest('hvm', 'i686', ['test']), guest('xen', 'i686', ['test'])), want: [] },
    { name: 'x86_64 paravirt only', xml: caps(guest('xen', 'x86_64', ['xen'])), want: [] },
    { name: 'no guests', xml: caps(), want: [] },
    { name: 'malformed XML', xml: '<capabilities><guest>', want: [] },
  ])('lists x86_64 hvm types for $name', async ({ xml, want }) => {
    expect(await parseGuestDomainTypes(xml)).toEqual(want);
  });
});

describe('retargetDomainXml', () => {
  const source = { hostId: 'a', files: { 'disk:root': '/s/vms/w/root.qcow2', kernel: '/s/images/k1', 'console-log': '/s/vms/w/console.log', seed: '/s/vms/w/seed.iso' } };
  const target = { hostId: 'b', files: { 'disk:root': '/t/vms/w/root.qcow2', kernel: '/t/images/k1', 'console-log': '/t/vms/w/console.log', seed: '/t/vms/w/seed.iso' } };
  const xml = [
    "<domain type='qemu'><name>virtfleet-a.w</name><metadata><virtfleet:workload xmlns:virtfleet='https://virtfleet.dev/xmlns/domain/v1'>",
    '<virtfleet:host-id>a</virtfleet:host-id><virtfleet:workload-id>w</virtfleet:workload-id></virtfleet:workload></metadata>',
    "<os><kernel>/s/images/k1</kernel></os><devices><disk type='file' device='disk'><source file='/s/vms/w/root.qcow2'/></disk>",
    "<disk type='file' device='cdrom'><source file=\"/s/vms/w/seed.iso\"/></disk><serial type='pty'><log file='/s/vms/w/console.log' append='on'/></serial>",
    "<description>/s/vms/w/root.qcow2.bak</description></devices></domain>",
  ].join('');

  it('replaces every path by role and the owning host, and nothing else', () => {
    const out = retargetDomainXml(xml, source, target);
    expect(out).toContain("<source file='/t/vms/w/root.qcow2'/>");
    expect(out).toContain('<kernel>/t/images/k1</kernel>');
    expect(out).toContain('<source file="/t/vms/w/seed.iso"/>');
    expect(out).toContain("<log file='/t/vms/w/console.log' append='on'/>");
    expect(out).toContain('<virtfleet:host-id>b</virtfleet:host-id>');
    // A longer string that merely starts with a path is not a path of the VM.
    expect(out).toContain('<description>/s/vms/w/root.qcow2.bak</description>');
    expect(out).not.toMatch(/'\/s\/|>\/s\/images/);
  });

  it.each([
    ['a role the target did not prepare', { ...target, files: { ...target.files, seed: undefined } }, /target\.files: has no path for seed/],
    ['an unsafe target path', { ...target, files: { ...target.files, kernel: "/t/k'/><evil/>" } }, /kernel path .* is not an absolute path/],
    ['a relative target path', { ...target, files: { ...target.files, kernel: 'k1' } }, /kernel path "k1"/],
  ])('refuses %s', (_name, to, message) => {
    const files = Object.fromEntries(Object.entries(to.files).filter((e): e is [string, string] => e[1] !== undefined));
    expect(() => retargetDomainXml(xml, source, { hostId: to.hostId, files })).toThrow(message);
  });

  it('refuses a domain without virtfleet metadata', () => {
    expect(() => retargetDomainXml("<domain><name>x</name></domain>", { hostId: 'a', files: {} }, { hostId: 'b', files: {} })).toThrow(/no virtfleet host-id/);
  });
});

describe('savedStateFiles and relabelDomainXml', () => {
  const xml = [
    "<domain type='qemu'><name>virtfleet-a.w1</name><uuid>11111111-2222-3333-4444-555555555555</uuid><metadata>",
    "<virtfleet:workload xmlns:virtfleet='https://virtfleet.dev/xmlns/domain/v1'><virtfleet:host-id>a</virtfleet:host-id>",
    '<virtfleet:workload-id>w1</virtfleet:workload-id><virtfleet:name>web</virtfleet:name></virtfleet:workload></metadata>',
    "<devices><disk type='file' device='disk'><source file='/s/vms/w1/root.qcow2'/></disk></devices></domain>",
  ].join('');

  it('names every file by its role under a directory no host has, and back again on the receiving host', () => {
    const neutral = savedStateFiles(['disk:root', 'console-log']);
    expect(neutral).toEqual({ 'disk:root': '/virtfleet-saved-state/disk/root', 'console-log': '/virtfleet-saved-state/console-log' });
    const travelling = retargetDomainXml(xml, { hostId: 'a', files: { 'disk:root': '/s/vms/w1/root.qcow2' } }, { hostId: 'a', files: neutral });
    expect(travelling).toContain("<source file='/virtfleet-saved-state/disk/root'/>");
    const landed = retargetDomainXml(travelling, { hostId: 'a', files: neutral }, { hostId: 'b', files: { 'disk:root': '/t/vms/w2/root.qcow2', 'console-log': '/t/vms/w2/console.log' } });
    expect(landed).toContain("<source file='/t/vms/w2/root.qcow2'/>");
  });

  it('gives the domain a new name, UUID, workload id and workload name, and changes nothing else', () => {
    const out = relabelDomainXml(xml, { name: 'virtfleet-b.w2', uuid: '66666666-7777-8888-9999-000000000000', workloadId: 'w2', workloadName: 'web<&>copy' });
    expect(out).toBe(
      xml
        .replace('virtfleet-a.w1', 'virtfleet-b.w2')
        .replace('11111111-2222-3333-4444-555555555555', '66666666-7777-8888-9999-000000000000')
        .replace('<virtfleet:workload-id>w1<', '<virtfleet:workload-id>w2<')
        .replace('<virtfleet:name>web<', '<virtfleet:name>web&lt;&amp;&gt;copy<'),
    );
  });

  it.each([
    ['no name', xml.replace(/<name>[^<]*<\/name>/, ''), /carries no name$/],
    ['no UUID', xml.replace(/<uuid>[^<]*<\/uuid>/, ''), /carries no uuid$/],
    ['no virtfleet metadata', '<domain><name>x</name><uuid>u</uuid></domain>', /carries no workload-id metadata$/],
  ])('refuses a domain with %s', (_name, input, message) => {
    expect(() => relabelDomainXml(input, { name: 'n', uuid: 'u', workloadId: 'w', workloadName: 'x' })).toThrow(message);
  });
});
