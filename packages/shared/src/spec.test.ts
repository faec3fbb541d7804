import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { loadCoordinatorProto } from './proto.js';
import { parseDurationMs, parseWorkloadSpec } from './spec.js';
import type { InvalidFieldsError } from './validation.js';

const container = { name: 'web', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.5, memory_mib: 64 };
const vm = { name: 'db', kind: 'vm', vcpus: 2, memory_mib: 1024, disk_gib: 10 };

describe('parseWorkloadSpec', () => {
  const accepted: { name: string; input: Record<string, unknown> }[] = [
    { name: 'a minimal container', input: container },
    { name: 'a minimal vm', input: vm },
    { name: 'a vm with a qcow2 disk', input: { ...vm, image: '/var/lib/virtfleet/images/db.qcow2' } },
    { name: 'a registry image with port, tag and digest', input: { ...container, image: `registry.local:5000/team/app:1.2@sha256:${'a'.repeat(64)}` } },
    { name: 'a 63-character name', input: { ...container, name: `a${'-'.repeat(61)}b` } },
    { name: 'a vm from a catalog image', input: { ...vm, image: 'debian-12.qcow2' } },
    { name: 'a vm from a pinned catalog image', input: { ...vm, image: `debian@sha256:${'b'.repeat(64)}` } },
    {
      name: 'a vm with data disks, kernel boot, cloud-init and a domain type',
      input: {
        ...vm,
        image: 'guest-disk',
        disks: [{ name: 'data', size_gib: 5 }, { name: 'logs', size_gib: 1 }],
        boot: { kernel: 'guest-kernel', initrd: 'guest-initrd', cmdline: 'console=ttyS0 root=/dev/vda' },
        cloud_init: { user_data: '#cloud-config\nruncmd: [echo hi]\n', meta_data: 'instance-id: x\n', ssh_authorized_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me@laptop'], hostname: 'db-1' },
        domain_type: 'qemu',
      },
    },
    { name: 'a container publishing ports on a network', input: { ...container, network: 'default', ports: [{ host_port: 8080, port: 80 }, { host_port: 8080, port: 80, protocol: 'udp' }] } },
    { name: 'a shell-script user-data', input: { ...vm, cloud_init: { user_data: '#!/bin/sh\necho hi\n' } } },
    { name: 'proto\'s empty lists and messages', input: { ...vm, disks: [], boot: null, cloud_init: null, domain_type: '' } },
    { name: 'env and labels', input: { ...container, env: { PATH_X: '/bin', _A: '' }, labels: { 'team.io/owner': 'ops', tier: 'web' } } },
    { name: 'a vm backed up hourly, keeping the last 3', input: { ...vm, backup: { every: '1h', keep_last: 3 } } },
    { name: 'a container backed up every 5m with daily and weekly retention', input: { ...container, backup: { every: '5m', keep_daily: 7, keep_weekly: 4 } } },
    { name: 'a backup every 1h30m', input: { ...vm, backup: { every: '1h30m', keep_last: 1000 } } },
    { name: "proto's unset backup policy", input: { ...vm, backup: null } },
  ];
  it.each(accepted)('accepts $name', ({ input }) => {
    expect(() => parseWorkloadSpec(input)).not.toThrow();
  });

  it('fills defaults', () => {
    expect(parseWorkloadSpec(container)).toEqual({
      ...container,
      disk_gib: 0,
      command: [],
      env: {},
      labels: {},
      priority: 50,
      expected_runtime_seconds: 0,
      tenant: 'default',
      performance: { memory_headroom_mib: 0, latency_class: 'standard' },
      security: { isolation: 'shared', min_trust_level: 0, required_features: [] },
      host_selector: {},
      restart_policy: 'always',
      failover: 'reschedule',
    });
  });

  it.each([
    { kind: 'container', extra: { image: 'busybox' }, want: 'reschedule' },
    { kind: 'vm', extra: {}, want: 'fence-first' },
  ])('defaults a $kind to failover $want, and takes an explicit mode', ({ kind, extra, want }) => {
    const base = { name: 'w', kind, vcpus: 1, memory_mib: 64, ...extra };
    expect(parseWorkloadSpec(base).failover).toBe(want);
    expect(parseWorkloadSpec({ ...base, failover: '' }).failover, 'proto sends "" for unset').toBe(want);
    const other = want === 'reschedule' ? 'fence-first' : 'reschedule';
    expect(parseWorkloadSpec({ ...base, failover: other }).failover).toBe(other);
  });

  it.each([
    { field: 'restart_policy', value: 'sometimes', message: /spec\.restart_policy: must be one of always, on-failure, never/ },
    { field: 'failover', value: 'migrate', message: /spec\.failover: must be one of reschedule, fence-first/ },
  ])('rejects $field $value naming the field', ({ field, value, message }) => {
    expect(() => parseWorkloadSpec({ ...container, [field]: value })).toThrow(message);
  });

  it('reads a proto-decoded spec: empty strings and null messages are unset, optional markers dropped', () => {
    const decoded = {
      ...container,
      disk_gib: 0,
      command: [],
      env: {},
      labels: {},
      priority: 0,
      _priority: 'priority',
      expected_runtime_seconds: 0,
      tenant: '',
      performance: null,
      security: { isolation: '', min_trust_level: 2, required_features: ['secure-boot'], anti_affinity_group: '' },
      host_selector: {},
    };
    const spec = parseWorkloadSpec(decoded);
    expect(spec.priority).toBe(0);
    expect(spec.tenant).toBe('default');
    expect(spec.performance).toEqual({ memory_headroom_mib: 0, latency_class: 'standard' });
    expect(spec.security).toEqual({ isolation: 'shared', min_trust_level: 2, required_features: ['secure-boot'] });
  });

  const rejected: { name: string; input: unknown; field: string; reason: RegExp }[] = [
    { name: 'no spec at all', input: undefined, field: 'spec', reason: /^is required$/ },
    { name: 'XML in the name', input: { ...container, name: 'x</name><devices>' }, field: 'spec.name', reason: /DNS label/ },
    { name: 'a name with a quote', input: { ...container, name: "a'b" }, field: 'spec.name', reason: /DNS label/ },
    { name: 'a leading hyphen', input: { ...container, name: '-web' }, field: 'spec.name', reason: /DNS label/ },
    { name: 'a 64-character name', input: { ...container, name: 'a'.repeat(64) }, field: 'spec.name', reason: /DNS label/ },
    { name: 'an unknown kind', input: { ...container, kind: 'pod' }, field: 'spec.kind', reason: /vm, container/ },
    { name: 'memory as a string', input: { ...container, memory_mib: '64' }, field: 'spec.memory_mib', reason: /number/ },
    { name: 'fractional memory', input: { ...container, memory_mib: 64.5 }, field: 'spec.memory_mib', reason: /whole/ },
    { name: 'memory below Docker minimum', input: { ...container, memory_mib: 5 }, field: 'spec.memory_mib', reason: /at least 6/ },
    { name: 'absurd memory', input: { ...container, memory_mib: 1e12 }, field: 'spec.memory_mib', reason: /at most/ },
    { name: 'zero vcpus', input: { ...container, vcpus: 0 }, field: 'spec.vcpus', reason: /greater than 0/ },
    { name: 'NaN vcpus', input: { ...container, vcpus: Number.NaN }, field: 'spec.vcpus', reason: /number/ },
    { name: 'a container below the smallest CPU quota', input: { ...container, vcpus: 0.005 }, field: 'spec.vcpus', reason: /at least 0.01 for a container/ },
    { name: 'half a vcpu for a vm', input: { ...vm, vcpus: 1.5 }, field: 'spec.vcpus', reason: /whole number for a vm/ },
    { name: 'negative disk', input: { ...vm, disk_gib: -1 }, field: 'spec.disk_gib', reason: /negative/ },
    { name: 'a container without image', input: { ...container, image: '' }, field: 'spec.image', reason: /required/ },
    { name: 'an image with spaces', input: { ...container, image: 'busybox latest' }, field: 'spec.image', reason: /reference/ },
    { name: 'an image with a shell substitution', input: { ...container, image: '$(reboot)' }, field: 'spec.image', reason: /reference/ },
    { name: 'a relative disk path', input: { ...vm, image: 'images/disk.qcow2' }, field: 'spec.image', reason: /catalog image.*or an absolute path/ },
    { name: 'XML in a catalog image name', input: { ...vm, image: 'a<b>' }, field: 'spec.image', reason: /catalog image/ },
    { name: 'a pin that is not sha256', input: { ...vm, image: 'debian@md5:abc' }, field: 'spec.image', reason: /catalog image/ },
    { name: 'data disks for a container', input: { ...container, disks: [{ name: 'd', size_gib: 1 }] }, field: 'spec.disks', reason: /vms only/ },
    { name: 'cloud-init for a container', input: { ...container, cloud_init: { user_data: '#!/bin/sh' } }, field: 'spec.cloud_init', reason: /vms only/ },
    { name: 'two data disks of one name', input: { ...vm, disks: [{ name: 'd', size_gib: 1 }, { name: 'd', size_gib: 1 }] }, field: 'spec.disks.1.name', reason: /unique/ },
    { name: 'a data disk named root', input: { ...vm, disks: [{ name: 'root', size_gib: 1 }] }, field: 'spec.disks.0.name', reason: /image's disk/ },
    { name: 'a data disk with ../ in its name', input: { ...vm, disks: [{ name: '../etc', size_gib: 1 }] }, field: 'spec.disks.0.name', reason: /DNS label/ },
    { name: 'an empty data disk', input: { ...vm, disks: [{ name: 'd', size_gib: 0 }] }, field: 'spec.disks.0.size_gib', reason: /at least 1/ },
    { name: 'a kernel by path', input: { ...vm, boot: { kernel: '/boot/vmlinuz' } }, field: 'spec.boot.kernel', reason: /catalog image/ },
    { name: 'a cmdline with a newline', input: { ...vm, boot: { kernel: 'k', cmdline: 'a\nb' } }, field: 'spec.boot.cmdline', reason: /control/ },
    { name: 'user-data without a header', input: { ...vm, cloud_init: { user_data: 'packages: [nginx]' } }, field: 'spec.cloud_init.user_data', reason: /cloud-init header/ },
    { name: 'malformed #cloud-config', input: { ...vm, cloud_init: { user_data: '#cloud-config\nruncmd: [unclosed\n' } }, field: 'spec.cloud_init.user_data', reason: /not valid YAML/ },
    { name: '#cloud-config that is a list', input: { ...vm, cloud_init: { user_data: '#cloud-config\n- a\n' } }, field: 'spec.cloud_init.user_data', reason: /YAML mapping/ },
    { name: 'meta-data that is not YAML', input: { ...vm, cloud_init: { meta_data: 'a: [' } }, field: 'spec.cloud_init.meta_data', reason: /not valid YAML/ },
    { name: 'a key that is not OpenSSH', input: { ...vm, cloud_init: { ssh_authorized_keys: ['hello'] } }, field: 'spec.cloud_init.ssh_authorized_keys.0', reason: /OpenSSH/ },
    { name: 'keys beside a script', input: { ...vm, cloud_init: { user_data: '#!/bin/sh', ssh_authorized_keys: ['ssh-rsa AAAA x'] } }, field: 'spec.cloud_init.ssh_authorized_keys', reason: /#cloud-config/ },
    { name: 'a hostname with a dot', input: { ...vm, cloud_init: { hostname: 'a.b' } }, field: 'spec.cloud_init.hostname', reason: /DNS label/ },
    { name: 'an unknown domain type', input: { ...vm, domain_type: 'xen' }, field: 'spec.domain_type', reason: /kvm, qemu/ },
    { name: 'a port above 65535', input: { ...container, ports: [{ host_port: 70000, port: 80 }] }, field: 'spec.ports.0.host_port', reason: /at most 65535/ },
    { name: 'a host port published twice', input: { ...container, ports: [{ host_port: 80, port: 80 }, { host_port: 80, port: 81 }] }, field: 'spec.ports.1.host_port', reason: /tcp port 80 is published twice/ },
    { name: 'an unknown protocol', input: { ...container, ports: [{ host_port: 80, port: 80, protocol: 'sctp' }] }, field: 'spec.ports.0.protocol', reason: /tcp, udp/ },
    { name: 'ports on network none', input: { ...container, network: 'none', ports: [{ host_port: 80, port: 80 }] }, field: 'spec.ports', reason: /need a network/ },
    { name: 'ports for a vm without a network', input: { ...vm, ports: [{ host_port: 80, port: 80 }] }, field: 'spec.ports', reason: /need the VM on a host network/ },
    { name: 'a network that is not a label', input: { ...container, network: 'Back End' }, field: 'spec.network', reason: /host network/ },
    { name: 'a disk path with ..', input: { ...vm, image: '/var/../etc/shadow' }, field: 'spec.image', reason: /normalised/ },
    { name: 'a disk path with a quote', input: { ...vm, image: "/var/x'.img" }, field: 'spec.image', reason: /absolute/ },
    { name: 'a command for a vm', input: { ...vm, command: ['/bin/sh'] }, field: 'spec.command', reason: /containers only/ },
    { name: 'env for a vm', input: { ...vm, env: { A: '1' } }, field: 'spec.env', reason: /containers only/ },
    { name: 'an env name with =', input: { ...container, env: { 'A=B': '1' } }, field: 'spec.env.A=B', reason: /environment names/ },
    { name: 'NUL in a command argument', input: { ...container, command: ['a\0b'] }, field: 'spec.command.0', reason: /NUL/ },
    { name: 'a control character in a label', input: { ...container, labels: { a: 'x\ny' } }, field: 'spec.labels.a', reason: /control/ },
    // A key from the request is shown in printable ASCII (it travels in a gRPC trailer), so a look-alike letter shows.
    { name: 'a label key with a Cyrillic а', input: { ...container, labels: { '\u0430pp': 'web' } }, field: 'spec.labels.\\u{430}pp', reason: /label keys/ },
    { name: 'an env name with a zero-width space', input: { ...container, env: { 'A\u200bB': '1' } }, field: 'spec.env.A\\u{200b}B', reason: /environment names/ },
    { name: 'an env name of a space', input: { ...container, env: { ' ': '1' } }, field: 'spec.env.\\u{20}', reason: /environment names/ },
    { name: 'a label key too long to show whole', input: { ...container, labels: { ['k'.repeat(100)]: 'v' } }, field: `spec.labels.${'k'.repeat(80)}...`, reason: /label keys/ },
    { name: 'an unknown field', input: { ...container, memroy: 64 }, field: 'spec.memroy', reason: /^unknown field$/ },
    { name: 'a missing field', input: { name: 'web', kind: 'vm', vcpus: 1 }, field: 'spec.memory_mib', reason: /^is required$/ },
    { name: 'priority above 100', input: { ...container, priority: 101 }, field: 'spec.priority', reason: /at most 100/ },
    { name: 'a fractional priority', input: { ...container, priority: 1.5 }, field: 'spec.priority', reason: /whole/ },
    { name: 'a negative run time', input: { ...container, expected_runtime_seconds: -1 }, field: 'spec.expected_runtime_seconds', reason: /negative/ },
    { name: 'a tenant with a dot', input: { ...container, tenant: 'a.b' }, field: 'spec.tenant', reason: /DNS label/ },
    { name: 'an unknown isolation', input: { ...container, security: { isolation: 'private' } }, field: 'spec.security.isolation', reason: /shared, tenant, dedicated/ },
    { name: 'a trust level above 10', input: { ...container, security: { min_trust_level: 11 } }, field: 'spec.security.min_trust_level', reason: /at most 10/ },
    { name: 'a feature with spaces', input: { ...container, security: { required_features: ['secure boot'] } }, field: 'spec.security.required_features.0', reason: /features/ },
    { name: 'utilisation above 1', input: { ...container, performance: { max_host_cpu_utilisation: 1.5 } }, field: 'spec.performance.max_host_cpu_utilisation', reason: /at most 1/ },
    { name: 'zero tolerated utilisation', input: { ...container, performance: { max_host_cpu_utilisation: 0 } }, field: 'spec.performance.max_host_cpu_utilisation', reason: /greater than 0/ },
    { name: 'an unknown latency class', input: { ...container, performance: { latency_class: 'ultra' } }, field: 'spec.performance.latency_class', reason: /standard, low, batch/ },
    { name: 'an unknown performance field', input: { ...container, performance: { cpu: 1 } }, field: 'spec.performance.cpu', reason: /^unknown field$/ },
    { name: 'a backup policy without every', input: { ...vm, backup: { keep_last: 3 } }, field: 'spec.backup.every', reason: /^is required$/ },
    { name: "proto's empty every", input: { ...vm, backup: { every: '', keep_last: 3, keep_daily: 0, keep_weekly: 0 } }, field: 'spec.backup.every', reason: /duration such as/ },
    { name: 'a backup every 4m', input: { ...vm, backup: { every: '4m', keep_last: 3 } }, field: 'spec.backup.every', reason: /at least 5m/ },
    { name: 'a backup every 299s', input: { ...vm, backup: { every: '299s', keep_last: 3 } }, field: 'spec.backup.every', reason: /at least 5m/ },
    { name: 'an every that is not a duration', input: { ...vm, backup: { every: 'hourly', keep_last: 3 } }, field: 'spec.backup.every', reason: /duration such as/ },
    { name: 'an every as a number', input: { ...vm, backup: { every: 3600, keep_last: 3 } }, field: 'spec.backup.every', reason: /duration such as/ },
    { name: 'an every above a year', input: { ...vm, backup: { every: '400d', keep_last: 3 } }, field: 'spec.backup.every', reason: /at most 366d/ },
    { name: 'a backup policy keeping nothing', input: { ...vm, backup: { every: '1h' } }, field: 'spec.backup', reason: /one of keep_last, keep_daily, keep_weekly above 0/ },
    { name: 'keep_last above 1000', input: { ...vm, backup: { every: '1h', keep_last: 1001 } }, field: 'spec.backup.keep_last', reason: /at most 1000/ },
    { name: 'a negative keep_daily', input: { ...vm, backup: { every: '1h', keep_last: 1, keep_daily: -1 } }, field: 'spec.backup.keep_daily', reason: /negative/ },
    { name: 'a fractional keep_weekly', input: { ...vm, backup: { every: '1h', keep_weekly: 1.5 } }, field: 'spec.backup.keep_weekly', reason: /whole/ },
    { name: 'an unknown backup field', input: { ...vm, backup: { every: '1h', keep_last: 1, keep_monthly: 2 } }, field: 'spec.backup.keep_monthly', reason: /^unknown field$/ },
  ];
  it.each(rejected)('rejects $name naming $field', ({ input, field, reason }) => {
    let caught: unknown;
    try {
      parseWorkloadSpec(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    const e = caught as InvalidArgumentError;
    expect(e.field).toBe(field);
    expect(e.reason).toMatch(reason);
  });

  // Found by the API fuzz: a message listing each of 30,000 bad keys ran to megabytes, and a gRPC status that size never reached the caller.
  it.each([
    { name: 'env', bad: (i: number) => [`${i} bad`, 'v'] },
    { name: 'labels', bad: (i: number) => [`-${i}`, 'v'] },
  ])('lists the problems of a $name map with 30,000 bad keys up to 4 KiB, then counts the rest', ({ name, bad }) => {
    const input = { ...container, [name]: Object.fromEntries(Array.from({ length: 30_000 }, (_, i) => bad(i))) };
    let error: InvalidFieldsError | undefined;
    try {
      parseWorkloadSpec(input);
    } catch (err) {
      error = err as InvalidFieldsError;
    }
    expect(error?.problems.length).toBe(30_000);
    expect(error?.message).toMatch(new RegExp(`^spec\\.${name}\\.[^;]+; .*; and \\d+ more problems$`));
    expect(error?.message.length).toBeLessThan(4096 + 200);
  });

  it('names the file when given a file prefix', () => {
    expect(() => parseWorkloadSpec({ ...container, vcpus: -1 }, 'web.yaml:')).toThrow(/^web\.yaml: vcpus: /);
  });

  it('lists every problem, each with its field and reason', () => {
    const input = { ...container, name: 'Web', vcpus: 0, memroy: 64, env: { 'A B': '1' } };
    const problems = [
      { field: 'spec.name', reason: expect.stringMatching(/DNS label/) as string },
      { field: 'spec.vcpus', reason: 'must be greater than 0' },
      { field: 'spec.env.A B', reason: expect.stringMatching(/environment names/) as string },
      { field: 'spec.memroy', reason: 'unknown field' },
    ];
    expect(() => parseWorkloadSpec(input)).toThrow(expect.objectContaining({ field: 'spec.name', problems }));
    expect(() => parseWorkloadSpec(input)).toThrow(/^spec\.name: must be a DNS label[^;]*; spec\.vcpus: must be greater than 0; spec\.env\.A B: environment names[^;]*; spec\.memroy: unknown field$/);
    // From a file, the file comes first, once.
    expect(() => parseWorkloadSpec(input, 'web.yaml:')).toThrow(/^web\.yaml: name: must be a DNS label[^;]*; vcpus: must be greater than 0; env\.A B: [^;]*; memroy: unknown field$/);
    expect(() => parseWorkloadSpec(input, 'web.yaml:')).not.toThrow(/more problem/);
  });
});

describe('backup policy round trip: proto, then zod, then JSON', () => {
  // The path a spec takes from the CLI: SubmitWorkloadRequest over gRPC, parsed, stored as JSON, parsed again.
  const submit = loadCoordinatorProto().Coordinator.service.SubmitWorkload;
  const cases: { name: string; backup: Record<string, unknown> | undefined; want: unknown }[] = [
    { name: 'no policy', backup: undefined, want: undefined },
    { name: 'keep_last only', backup: { every: '1h', keep_last: 3 }, want: { every: '1h', keep_last: 3, keep_daily: 0, keep_weekly: 0 } },
    { name: 'every rule', backup: { every: '1d', keep_last: 2, keep_daily: 7, keep_weekly: 4 }, want: { every: '1d', keep_last: 2, keep_daily: 7, keep_weekly: 4 } },
    { name: 'a compound duration', backup: { every: '1h30m', keep_weekly: 1 }, want: { every: '1h30m', keep_last: 0, keep_daily: 0, keep_weekly: 1 } },
  ];
  it.each(cases)('keeps $name', ({ backup, want }) => {
    const wire = submit.requestSerialize({ spec: { ...vm, ...(backup ? { backup } : {}) }, request_id: 'r' });
    const decoded = submit.requestDeserialize(wire);
    const parsed = parseWorkloadSpec(decoded.spec);
    expect(parsed.backup, 'after the proto').toEqual(want);
    const stored: unknown = JSON.parse(JSON.stringify(parsed));
    expect(parseWorkloadSpec(stored), 'after JSON').toEqual(parsed);
  });
});

describe('parseDurationMs', () => {
  it.each([
    { text: '5m', want: 300_000 },
    { text: '1h', want: 3_600_000 },
    { text: '1d', want: 86_400_000 },
    { text: '1h30m', want: 5_400_000 },
    { text: '90s', want: 90_000 },
    { text: '', want: undefined },
    { text: '1w', want: undefined },
    { text: '1.5h', want: undefined },
    { text: '-1h', want: undefined },
    { text: '60', want: undefined },
  ])('reads $text as $want', ({ text, want }) => {
    expect(parseDurationMs(text)).toBe(want);
  });
});
