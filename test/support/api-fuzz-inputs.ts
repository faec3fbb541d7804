import { createHash } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { DNS_LABEL, HOST_ID, IMAGE_FORMATS, IMAGE_NAME, OPAQUE_ID, STATE_FILE_ROLE, WORKLOAD_ID, type pb } from '@virtfleet/shared';
import { hostileString, nameCandidateArb } from '../../packages/shared/src/fuzz.test-support.js';
import type { MethodFuzz } from './grpc-fuzz.js';

/*
 * Generated requests for every method of the operator API (virtfleet.v1.Coordinator)
 * and of the agent's (virtfleet.v1.Agent). Values are mostly hostile (markup and
 * shell metacharacters, path traversal, NUL and control characters, look-alike
 * letters, very long strings, out-of-range numbers), with valid ones mixed in.
 * Every generated input of a method that changes something is built to be
 * refused: it names nothing that exists, or it breaks a documented rule
 * somewhere the handler checks before acting.
 */

// ---- values -----------------------------------------------------------------

const PIECES = ['<', '&', ']]>', '<![CDATA[', '$(reboot)', '`id`', ';', '|', '&&', '>', "'", '"', '../../etc/passwd', '..', '\0', '\u0007', '\r\n', '\u0430', '\u0435', '\u202e', '\u200b', '%2e%2e%2f', '{{7*7}}', '${jndi:x}'];
/** A string made to break something: markup, shell, traversal, control characters, look-alikes. */
export const hostile: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 3, arbitrary: fc.array(fc.oneof(fc.constantFrom(...PIECES), fc.stringMatching(/^[a-z0-9-]{1,8}$/)), { minLength: 1, maxLength: 5 }).map((p) => p.join('')) },
  { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'x'.repeat(5000), '../'.repeat(40) + 'etc/shadow', 'a'.repeat(300), '\u0430'.repeat(63)) },
);
/** Names to try: valid, a look-alike or an invisible character away from valid, hostile, far too long. */
const nameCandidate = nameCandidateArb(['fz-a', 'FZ-A', 'fz_a', 'fz-a.', 'root', 'none', 'default']);
export const text: fc.Arbitrary<string> = fc.oneof({ weight: 3, arbitrary: hostile }, { weight: 2, arbitrary: nameCandidate });
const notMatching = (re: RegExp) => text.filter((s) => !re.test(s));
const nonEmptyNotMatching = (re: RegExp) => text.filter((s) => s !== '' && !re.test(s));
const notIn = (values: readonly string[]) => text.filter((s) => s !== '' && !values.includes(s));

export const int32 = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: -3, max: 300 }), fc.constantFrom(0, -1, 2 ** 31 - 1, -(2 ** 31)));
export const uint32 = fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 300 }), fc.constantFrom(0, 1, 64, 65, 3600, 3601, 60_000, 60_001, 102_400, 102_401, 604_800, 604_801, 2 ** 32 - 1));
/** int64/uint64 travel as decimal strings (longs: String). */
export const uint64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), fc.constantFrom('0', '1', '9007199254740991', '9007199254740992', '18446744073709551615', '315360000', '315360001'));
export const double = fc.oneof(fc.double(), fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e308, 5e-324, 0.005, 0.5, 1, -1, 1025));
const bool = fc.boolean();
const dict = fc.dictionary(text, text, { maxKeys: 3 });

const opaqueId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,40}$/);
/** A request or command id: empty, valid or not. */
const anyRequestId = fc.oneof(fc.constant(''), opaqueId, text);
/** A request or command id that is refused. */
const badRequestId = nonEmptyNotMatching(OPAQUE_ID);
const badCommandId = notMatching(OPAQUE_ID);
const hostIdLike = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9_-]{0,20}[A-Za-z0-9])?$/);

const HOMOGLYPH: Record<string, string> = { a: '\u0430', e: '\u0435', o: '\u043e', p: '\u0440', c: '\u0441', x: '\u0445', i: '\u0456', s: '\u0455', '-': '\u2010', '0': '\u041e', '1': 'l' };
/** One of `names` a look-alike away: a homoglyph, an invisible mark, upper case or full width. */
function lookalikeOf(names: readonly string[]): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...names), fc.nat(), fc.constantFrom('swap', 'mark', 'upper', 'wide', 'trail')).map(([name, at, how]) => {
    const i = at % Math.max(1, name.length);
    if (how === 'swap') return name.slice(0, i) + (HOMOGLYPH[name[i] ?? ''] ?? '\u0430') + name.slice(i + 1);
    if (how === 'mark') return `${name.slice(0, i)}\u200b${name.slice(i)}`;
    if (how === 'upper') return name.toUpperCase() === name ? `${name}\u00ad` : name.toUpperCase();
    if (how === 'wide') return [...name].map((ch) => (/[a-z0-9]/.test(ch) ? String.fromCodePoint(ch.codePointAt(0)! + 0xfee0) : ch)).join('');
    return `${name} `;
  });
}

/** A reference that names none of `existing`: random, hostile, or a look-alike of one that exists. */
function unknownRef(existing: readonly string[], valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const candidates = existing.length > 0 ? fc.oneof(valid, text, lookalikeOf(existing)) : fc.oneof(valid, text);
  return candidates.filter((s) => !existing.includes(s));
}

// ---- workload specs ---------------------------------------------------------

const safeArg = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('$(reboot)', '`id`', 'a; rm -rf /', 'x | nc evil 1', '<script>&amp;]]>', '../../etc/passwd', '\u0430dmin', '%s%n')).filter((s) => !s.includes('\0'));

/** A container spec every rule allows, with metacharacters where free text may hold them. */
export function validContainerSpec(name: fc.Arbitrary<string>): fc.Arbitrary<pb.WorkloadSpec> {
  return fc.record({
    name,
    kind: fc.constant('container'),
    image: fc.constantFrom('sim:latest', 'busybox:1.36', 'registry.example.com:5000/team/app@sha256:' + 'ab'.repeat(32)),
    vcpus: fc.constantFrom(0.01, 0.1, 0.25),
    memory_mib: fc.integer({ min: 6, max: 32 }),
    command: fc.array(safeArg, { maxLength: 3 }),
    env: fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,12}$/), safeArg, { maxKeys: 3 }),
    labels: fc.dictionary(fc.stringMatching(/^[a-z0-9]([a-z0-9._/-]{0,10}[a-z0-9])?$/), fc.stringMatching(/^[ -~]{0,40}$/), { maxKeys: 3 }),
    priority: fc.integer({ min: 0, max: 100 }),
    restart_policy: fc.constantFrom('', 'always', 'on-failure', 'never'),
    expected_runtime_seconds: fc.constantFrom(0, 1, 3600),
  });
}

/** A VM spec every rule allows: diskless, with a cloud-init seed of shell and markup. */
const validVmSpec = fc.record({
  name: fc.stringMatching(/^vm-[a-z0-9]{1,12}$/),
  kind: fc.constant('vm'),
  vcpus: fc.constantFrom(1, 2),
  memory_mib: fc.integer({ min: 64, max: 256 }),
  cloud_init: fc.record({
    user_data: fc.constantFrom('#cloud-config\nruncmd: ["echo $(id) `uname` ; ls | wc -l > /tmp/x"]\n', '#!/bin/sh\necho "<a>&</a>" ]]> $(reboot)\n', ''),
    hostname: fc.constantFrom('', 'vm1'),
  }),
});

const DEEP_YAML = `#cloud-config\na: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
const DEEP_JSON = `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`;

/** Changes to a valid container spec that each break a rule for certain. */
const containerBreaks: fc.Arbitrary<(s: pb.WorkloadSpec) => pb.WorkloadSpec>[] = [
  notMatching(DNS_LABEL).map((name) => (s) => ({ ...s, name })),
  notIn(['vm', 'container']).map((kind) => (s) => ({ ...s, kind })),
  fc.constantFrom(0, -0, -1, NaN, Infinity, -Infinity, 1025, 1e308, 5e-324, 0.005).map((vcpus) => (s) => ({ ...s, vcpus })),
  fc.oneof(fc.integer({ min: -(2 ** 31), max: 5 }), fc.integer({ min: 16 * 1024 * 1024 + 1, max: 2 ** 31 - 1 })).map((memory_mib) => (s) => ({ ...s, memory_mib })),
  fc.oneof(fc.integer({ min: -(2 ** 31), max: -1 }), fc.integer({ min: 1024 * 1024 + 1, max: 2 ** 31 - 1 })).map((disk_gib) => (s) => ({ ...s, disk_gib })),
  text.filter((v) => v === '' || /[^A-Za-z0-9._/:@-]/.test(v)).map((image) => (s) => ({ ...s, image })),
  // Upper case is allowed in a registry host ('UPPER/case:tag' is valid), not in a path.
  fc.constantFrom('../../etc/passwd', '/etc/shadow', 'UPPER:tag', 'a..b', 'x:' + 't'.repeat(200)).map((image) => (s) => ({ ...s, image })),
  fc.dictionary(nonEmptyNotMatching(/^[A-Za-z_][A-Za-z0-9_]*$/), safeArg, { minKeys: 1, maxKeys: 2 }).map((env) => (s) => ({ ...s, env })),
  safeArg.map((v) => (s) => ({ ...s, env: { OK: `${v}\0` } })),
  fc.dictionary(nonEmptyNotMatching(/^[A-Za-z0-9]([A-Za-z0-9_./-]{0,61}[A-Za-z0-9])?$/), fc.constant('v'), { minKeys: 1, maxKeys: 2 }).map((labels) => (s) => ({ ...s, labels })),
  fc.constantFrom('\n', '\0', '\u0007', '\u007f').map((c) => (s) => ({ ...s, labels: { app: `web${c}` } })),
  fc.constant((s: pb.WorkloadSpec) => ({ ...s, labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) })),
  fc.oneof(fc.integer({ min: -(2 ** 31), max: -1 }), fc.integer({ min: 101, max: 2 ** 31 - 1 })).map((priority) => (s) => ({ ...s, priority })),
  notIn(['always', 'on-failure', 'never']).map((restart_policy) => (s) => ({ ...s, restart_policy })),
  notIn(['reschedule', 'fence-first']).map((failover) => (s) => ({ ...s, failover })),
  notIn(['keep', 'release']).map((stopped_reservation) => (s) => ({ ...s, stopped_reservation })),
  nonEmptyNotMatching(DNS_LABEL).map((tenant) => (s) => ({ ...s, tenant })),
  nonEmptyNotMatching(DNS_LABEL).map((network) => (s) => ({ ...s, network })),
  fc.constantFrom(-1, NaN, Infinity, 1e10).map((expected_runtime_seconds) => (s) => ({ ...s, expected_runtime_seconds })),
  fc.constant((s: pb.WorkloadSpec) => ({ ...s, command: Array.from({ length: 257 }, (_, i) => `a${i}`) })),
  fc.constantFrom('rm\0-rf', 'x'.repeat(4097)).map((arg) => (s) => ({ ...s, command: ['sh', arg] })),
  fc.constantFrom({ user_data: '#cloud-config\n' }, { user_data: DEEP_YAML }, { meta_data: DEEP_JSON }, { hostname: 'vm1' }).map((cloud_init) => (s) => ({ ...s, cloud_init })),
  fc.constant((s: pb.WorkloadSpec) => ({ ...s, disks: [{ name: 'data', size_gib: 1 }] })),
  fc.constant((s: pb.WorkloadSpec) => ({ ...s, boot: { kernel: 'vmlinuz', initrd: '', cmdline: 'console=ttyS0' } })),
  notIn(['kvm', 'qemu']).map((domain_type) => (s) => ({ ...s, domain_type })),
  fc.oneof(fc.integer({ min: -(2 ** 31), max: 0 }), fc.integer({ min: 65_536, max: 2 ** 31 - 1 })).map((host_port) => (s) => ({ ...s, ports: [{ host_port, port: 80, protocol: 'tcp' }] })),
  notIn(['tcp', 'udp']).map((protocol) => (s) => ({ ...s, ports: [{ host_port: 8080, port: 80, protocol }] })),
  fc.oneof(fc.integer({ min: -(2 ** 31), max: -1 }), fc.integer({ min: 11, max: 2 ** 31 - 1 })).map((min_trust_level) => (s) => ({ ...s, security: { min_trust_level } })),
  notIn(['shared', 'tenant', 'dedicated']).map((isolation) => (s) => ({ ...s, security: { isolation } })),
  nonEmptyNotMatching(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/).map((f) => (s) => ({ ...s, security: { required_features: [f] } })),
  fc.constantFrom(0, -0.5, 1.5, NaN, Infinity).map((max_host_cpu_utilisation) => (s) => ({ ...s, performance: { max_host_cpu_utilisation } })),
  notIn(['standard', 'low', 'batch']).map((latency_class) => (s) => ({ ...s, performance: { latency_class } })),
  fc.record({ every: text, keep_last: fc.constant(0), keep_daily: fc.constant(0), keep_weekly: fc.constant(0) }).map((backup) => (s) => ({ ...s, backup })),
];

/** Changes to a valid VM spec that each break a rule for certain. */
const vmBreaks: fc.Arbitrary<(s: pb.WorkloadSpec) => pb.WorkloadSpec>[] = [
  fc.constantFrom(DEEP_YAML, '#cloud-config\n- a\n', '#cloud-config\na: [\n', 'no header here', `#cloud-config\n${'a: b\n'.repeat(20_000)}`, '#!/bin/sh\n\0').map((user_data) => (s) => ({ ...s, cloud_init: { user_data } })),
  fc.constantFrom(DEEP_JSON, '[1, 2]', 'a: *x', 'a: 1\na: 2\n').map((meta_data) => (s) => ({ ...s, cloud_init: { meta_data } })),
  text.filter((k) => !/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$/.test(k)).map((key) => (s) => ({ ...s, cloud_init: { ssh_authorized_keys: [key] } })),
  nonEmptyNotMatching(DNS_LABEL).map((hostname) => (s) => ({ ...s, cloud_init: { hostname } })),
  fc.constantFrom(0.5, 1.5).map((vcpus) => (s) => ({ ...s, vcpus })),
  fc.constant((s: pb.WorkloadSpec) => ({ ...s, command: ['/bin/sh'] })),
  fc.constant((s: pb.WorkloadSpec) => ({ ...s, disks: [{ name: 'root', size_gib: 1 }] })),
  text.filter((v) => v.startsWith('/') || /[^a-z0-9._@:-]/.test(v)).map((image) => (s) => ({ ...s, image: v0(image) })),
  fc.constantFrom('/var/lib/../../etc/shadow', '/a/./b', '//etc/passwd', '/tmp/$(id).qcow2').map((image) => (s) => ({ ...s, image })),
  fc.constant((s: pb.WorkloadSpec) => ({ ...s, network: '', ports: [{ host_port: 8080, port: 80, protocol: 'tcp' }] })),
  // eslint-disable-next-line no-control-regex
  text.filter((c) => /[\u0000-\u001f\u007f]/.test(c) || c.length > 2048).map((cmdline) => (s) => ({ ...s, boot: { kernel: 'vmlinuz', cmdline } })),
];
/** An image reference that is neither a path nor a catalog reference: never '' (a diskless VM). */
const v0 = (image: string) => (image === '' ? '\0' : image);

const SPEC_FIELDS: Record<string, fc.Arbitrary<unknown>> = {
  name: text,
  kind: fc.oneof(text, fc.constantFrom('vm', 'container')),
  image: text,
  vcpus: double,
  memory_mib: int32,
  disk_gib: int32,
  command: fc.array(text, { maxLength: 4 }),
  env: dict,
  labels: dict,
  priority: int32,
  expected_runtime_seconds: double,
  tenant: text,
  performance: fc.record({ max_host_cpu_utilisation: double, memory_headroom_mib: int32, latency_class: text }, { requiredKeys: [] }),
  security: fc.record({ isolation: text, min_trust_level: int32, required_features: fc.array(text, { maxLength: 3 }), anti_affinity_group: text }, { requiredKeys: [] }),
  host_selector: dict,
  restart_policy: text,
  failover: text,
  stopped_reservation: text,
  disks: fc.array(fc.record({ name: text, size_gib: int32 }), { maxLength: 3 }),
  boot: fc.record({ kernel: text, initrd: text, cmdline: text }, { requiredKeys: [] }),
  cloud_init: fc.record({ user_data: fc.oneof(text, fc.constantFrom(DEEP_YAML, '#cloud-config\n{}')), meta_data: fc.oneof(text, fc.constant(DEEP_JSON)), network_config: text, ssh_authorized_keys: fc.array(text, { maxLength: 2 }), hostname: text }, { requiredKeys: [] }),
  domain_type: text,
  network: text,
  ports: fc.array(fc.record({ host_port: int32, port: int32, protocol: text }), { maxLength: 3 }),
  backup: fc.record({ every: text, keep_last: int32, keep_daily: int32, keep_weekly: int32 }, { requiredKeys: [] }),
};
/** Any value in any field (`kind` aside, when it must stay), valid or not, who knows. */
const changeOf = (keys: string[]) => fc.constantFrom(...keys).chain((key) => SPEC_FIELDS[key]!.map((value) => (s: pb.WorkloadSpec): pb.WorkloadSpec => ({ ...s, [key]: value })));
const randomChange = changeOf(Object.keys(SPEC_FIELDS));
/** A broken spec keeps its kind: what breaks a container (a VM's cloud-init) may be fine for a VM. */
const sameKindChange = changeOf(Object.keys(SPEC_FIELDS).filter((k) => k !== 'kind'));

const applied = (base: fc.Arbitrary<pb.WorkloadSpec>, changes: fc.Arbitrary<((s: pb.WorkloadSpec) => pb.WorkloadSpec)[]>) => fc.tuple(base, changes).map(([s, fs]) => fs.reduce((acc, f) => f(acc), s));

/** A spec that is refused for certain: a valid one with one rule broken, after up to two more changes of any field but its kind. */
export function brokenSpec(name: fc.Arbitrary<string>): fc.Arbitrary<pb.WorkloadSpec> {
  return fc.oneof(
    { weight: 3, arbitrary: applied(validContainerSpec(name), fc.tuple(fc.array(sameKindChange, { maxLength: 2 }), fc.oneof(...containerBreaks)).map(([r, b]) => [...r, b])) },
    { weight: 1, arbitrary: applied(validVmSpec, fc.tuple(fc.array(sameKindChange, { maxLength: 1 }), fc.oneof(...vmBreaks)).map(([r, b]) => [...r, b])) },
  );
}

/** Any spec: valid, broken, or changed anywhere at random. */
export function anySpec(name: fc.Arbitrary<string>): fc.Arbitrary<pb.WorkloadSpec> {
  return fc.oneof(validContainerSpec(name), validVmSpec, brokenSpec(name), applied(validContainerSpec(name), fc.array(randomChange, { minLength: 1, maxLength: 3 })));
}

// ---- the operator API ---------------------------------------------------------

/** What exists in the cluster the operator fuzz runs against. */
export interface OperatorWorld {
  /** Workloads that exist: each one's id and name. */
  workloads: { id: string; name: string }[];
  hostIds: string[];
  imageName: string;
  backupId: string;
  tokenId: string;
}

const pageToken = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: text },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom<unknown>({ offset: -1 }, { offset: 1e308 }, { offset: 1.5 }, { arrivalSeq: 0, id: '' }, { arrivalSeq: 1e308, id: '../../etc' }, { after: '\0' }, { after: '' }, [], null, { offset: 0, extra: 1 }, JSON.parse(DEEP_JSON) as unknown)
      .map((v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url')),
  },
  { weight: 1, arbitrary: fc.constant(Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`).toString('base64url')) },
);

/** The generated calls of every method of virtfleet.v1.Coordinator, given what exists. */
export function operatorFuzz(world: OperatorWorld): Record<string, MethodFuzz> {
  const refs = world.workloads.flatMap((w) => [w.id, w.name]);
  const realRef = fc.constantFrom(...refs);
  const unknownWorkload = unknownRef(refs, fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,24}[a-z0-9])?$/));
  const anyWorkloadRef = fc.oneof(realRef, unknownWorkload);
  const realHost = fc.constantFrom(...world.hostIds);
  const unknownHost = unknownRef(world.hostIds, hostIdLike);
  const anyHost = fc.oneof(realHost, unknownHost);
  const freshName = fc.stringMatching(/^fzn-[a-z0-9]{1,20}$/);
  const timeout = fc.oneof(fc.integer({ min: 0, max: 3600 }), int32);
  const badTimeout = fc.oneof(fc.integer({ min: -(2 ** 31), max: -1 }), fc.integer({ min: 3601, max: 2 ** 31 - 1 }));
  const action: MethodFuzz = {
    refusedByConstruction: true,
    input: fc.oneof(
      fc.record({ id: unknownWorkload, request_id: anyRequestId, timeout_seconds: int32, force: bool }),
      fc.record({ id: realRef, request_id: badRequestId, timeout_seconds: timeout, force: bool }),
      fc.record({ id: realRef, request_id: anyRequestId, timeout_seconds: badTimeout, force: bool }),
    ),
  };
  const backupIdLike = fc.stringMatching(/^bk-[0-9]{14}-[0-9a-f]{8}$/).filter((id) => id !== world.backupId);
  const unknownBackup = fc.oneof(backupIdLike, unknownRef([world.backupId], text));
  const rule = fc.oneof(fc.integer({ min: 0, max: 1000 }), int32);
  const badRules = fc.oneof(
    fc.record({ keep_last: fc.constant(0), keep_daily: fc.constant(0), keep_weekly: fc.constant(0) }),
    fc.record({ keep_last: fc.oneof(fc.integer({ min: -(2 ** 31), max: -1 }), fc.integer({ min: 1001, max: 2 ** 31 - 1 })), keep_daily: rule, keep_weekly: rule }),
  );
  const imageHeader = (name: fc.Arbitrary<string>) => fc.record({ name, format: fc.oneof(fc.constantFrom(...IMAGE_FORMATS), text), size: uint64, sha256: fc.oneof(fc.constant(''), fc.stringMatching(/^[0-9a-f]{64}$/), text) });
  const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));
  const freshImage = fc.stringMatching(/^fzi-[a-z0-9]{1,12}$/);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  return {
    SubmitWorkload: {
      refusedByConstruction: true,
      input: fc.oneof(
        { weight: 6, arbitrary: fc.record({ request_id: anyRequestId, spec: brokenSpec(freshName) }) },
        // Valid specs: refused for the request id, or the name that is taken.
        { weight: 2, arbitrary: fc.record({ request_id: badRequestId, spec: fc.oneof(validContainerSpec(freshName), validVmSpec) }) },
        { weight: 1, arbitrary: fc.record({ request_id: anyRequestId, spec: validContainerSpec(fc.constantFrom(...world.workloads.map((w) => w.name))) }) },
        { weight: 1, arbitrary: fc.record({ request_id: anyRequestId }) },
      ),
    },
    GetWorkload: { refusedByConstruction: false, input: fc.record({ id: anyWorkloadRef }) },
    ListWorkloads: { refusedByConstruction: false, input: fc.record({ host_id: fc.oneof(fc.constant(''), anyHost), state: fc.oneof(fc.constantFrom('', 'running', 'pending', 'deleted'), text), page_size: fc.oneof(fc.integer({ min: 0, max: 5001 }), int32), page_token: pageToken }) },
    ListHosts: { refusedByConstruction: false, input: fc.record({ page_size: fc.oneof(fc.integer({ min: 0, max: 5001 }), int32), page_token: pageToken }) },
    StartWorkload: action,
    StopWorkload: action,
    PauseWorkload: action,
    ResumeWorkload: action,
    DeleteWorkload: action,
    ExplainWorkload: { refusedByConstruction: false, input: fc.record({ id: anyWorkloadRef }) },
    PlanWorkload: { refusedByConstruction: false, input: fc.oneof(fc.record({ spec: anySpec(freshName) }), fc.constant({})) },
    GetQueue: { refusedByConstruction: false, input: fc.record({ page_size: fc.oneof(fc.integer({ min: 0, max: 5001 }), int32), page_token: pageToken }) },
    CordonHost: {
      refusedByConstruction: true,
      input: fc.oneof(fc.record({ host_id: unknownHost, cordon: bool, request_id: anyRequestId }), fc.record({ host_id: realHost, cordon: bool, request_id: badRequestId })),
    },
    // The hosts are up: a confirmation that one is dead is refused.
    ConfirmHostDead: { refusedByConstruction: true, input: fc.record({ host_id: anyHost, request_id: anyRequestId }) },
    SetQueuePolicy: {
      refusedByConstruction: true,
      input: fc.oneof(
        fc.record({ policy: fc.oneof(notIn(['fcfs', 'sjf', 'priority']), lookalikeOf(['fcfs', 'sjf', 'priority'])), backfill: bool, request_id: anyRequestId }, { requiredKeys: ['policy', 'request_id'] }),
        fc.record({ policy: fc.constantFrom('fcfs', 'sjf', 'priority'), backfill: bool, request_id: badRequestId }, { requiredKeys: ['policy', 'request_id'] }),
      ),
    },
    WatchEvents: {
      refusedByConstruction: false,
      input: fc.record({
        type_prefix: fc.oneof(fc.constantFrom('', 'io.virtfleet.workload', 'io.virtfleet.audit', 'x'.repeat(129)), text),
        // Valid starting points lie past the end of the log (a replay of all of it is slow once the fuzz has filled it).
        since_seq: fc.oneof(fc.constant('0'), fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n }).map(String), fc.constantFrom('9007199254740991', '18446744073709551615', '-1')),
        since_time: fc.oneof(fc.constantFrom('', '2999-12-31T23:59:59.999999999Z', '2999-01-01T00:00:00+14:00', '2026-02-30T25:61:61Z', '1970-01-01T00:00:00'), text),
        // A replay of the whole log is slow once the fuzz has filled it: rarely.
        from_start: fc.nat(19).map((n) => n === 0),
        follow: fc.nat(9).map((n) => n === 0),
      }),
    },
    // The fake driver keeps no logs: the agent answers UNIMPLEMENTED for a workload that has a host.
    WorkloadLogs: {
      refusedByConstruction: false,
      alsoExpected: [status.UNIMPLEMENTED],
      input: fc.record({ id: anyWorkloadRef, options: fc.record({ follow: bool, tail_lines: int32, since: fc.oneof(fc.constant(''), text) }, { requiredKeys: [] }) }),
    },
    ImportImage: {
      refusedByConstruction: true,
      input: fc.oneof(
        // A header that breaks a rule, with some bytes.
        // A header that may be valid, with bytes that never match its size.
        fc.tuple(imageHeader(fc.oneof(notMatching(IMAGE_NAME), freshImage)), bytes(600)).map(([header, data]) => [{ header: header.size === String(data.length) ? { ...header, size: String(data.length + 1) } : header }, { data }]),
        // A valid header, and bytes that do not match it.
        fc.tuple(freshImage, bytes(1536)).map(([name, data]) => [{ header: { name, format: 'raw', size: String(data.length + 512), sha256: '' } }, { data }]),
        fc.tuple(freshImage, fc.integer({ min: 1, max: 3 })).map(([name, sectors]) => {
          const data = Buffer.alloc(512 * sectors, 7);
          return [{ header: { name, format: 'raw', size: String(data.length), sha256: sha(Buffer.from('other')) } }, { data }];
        }),
        fc.tuple(freshImage, fc.constantFrom('qcow2', 'docker-archive'), bytes(1024)).map(([name, format, data]) => [{ header: { name, format, size: String(data.length + 1), sha256: '' } }, { data }]),
        // Out of order: bytes first, two headers, nothing at all.
        bytes(64).map((data) => [{ data }]),
        fc.tuple(freshImage, bytes(512)).map(([name, data]) => [{ header: { name, format: 'raw', size: '512', sha256: '' } }, { header: { name, format: 'raw', size: '512', sha256: '' } }, { data }]),
        fc.constant([]),
        // The name that exists, with other content.
        fc.constant([{ header: { name: world.imageName, format: 'raw', size: '512', sha256: '' } }, { data: Buffer.alloc(512, 1) }]),
      ),
    },
    ListImages: { refusedByConstruction: false, input: fc.constant({}) },
    DeleteImage: { refusedByConstruction: true, input: fc.record({ name: unknownRef([world.imageName], freshImage), force: bool }) },
    MigrateWorkload: {
      refusedByConstruction: true,
      input: fc.oneof(
        fc.record({ id: unknownWorkload, request_id: anyRequestId, target_host_id: fc.oneof(fc.constant(''), anyHost), mode: text, max_downtime_ms: uint32, bandwidth_mib_s: uint32, cancel: bool }),
        fc.record({ id: realRef, request_id: badRequestId, target_host_id: fc.constant(''), mode: fc.constant(''), max_downtime_ms: fc.constant(0), bandwidth_mib_s: fc.constant(0), cancel: bool }),
        fc.record({ id: realRef, request_id: anyRequestId, target_host_id: nonEmptyNotMatching(HOST_ID), mode: text, max_downtime_ms: uint32, bandwidth_mib_s: uint32, cancel: bool }),
        fc.record({ id: realRef, request_id: anyRequestId, target_host_id: fc.constant(''), mode: text, max_downtime_ms: fc.integer({ min: 60_001, max: 2 ** 32 - 1 }), bandwidth_mib_s: uint32, cancel: bool }),
        fc.record({ id: realRef, request_id: anyRequestId, target_host_id: fc.constant(''), mode: text, max_downtime_ms: fc.constant(0), bandwidth_mib_s: fc.integer({ min: 102_401, max: 2 ** 32 - 1 }), cancel: bool }),
        // Everything valid but the mode.
        fc.record({ id: realRef, request_id: fc.constant(''), target_host_id: fc.constant(''), mode: notIn(['auto', 'live', 'cold']), max_downtime_ms: fc.constant(0), bandwidth_mib_s: fc.constant(0), cancel: fc.constant(false) }),
        // A cancel with no migration under way.
        fc.record({ id: realRef, request_id: fc.constant(''), target_host_id: fc.constant(''), mode: fc.constant(''), max_downtime_ms: fc.constant(0), bandwidth_mib_s: fc.constant(0), cancel: fc.constant(true) }),
      ),
    },
    DrainHost: {
      refusedByConstruction: true,
      input: fc.oneof(
        fc.record({ host_id: unknownHost, request_id: anyRequestId, parallel: uint32, deadline_seconds: uint32, mode: fc.oneof(fc.constantFrom('', 'auto', 'live', 'cold'), text) }),
        fc.record({ host_id: realHost, request_id: badRequestId, parallel: fc.integer({ min: 0, max: 64 }), deadline_seconds: fc.constant(0), mode: fc.constant('') }),
        fc.record({ host_id: realHost, request_id: anyRequestId, parallel: fc.integer({ min: 65, max: 2 ** 32 - 1 }), deadline_seconds: uint32, mode: text }),
        fc.record({ host_id: realHost, request_id: anyRequestId, parallel: uint32, deadline_seconds: fc.integer({ min: 604_801, max: 2 ** 32 - 1 }), mode: text }),
        fc.record({ host_id: realHost, request_id: anyRequestId, parallel: uint32, deadline_seconds: uint32, mode: fc.oneof(notIn(['auto', 'live', 'cold']), lookalikeOf(['auto', 'live', 'cold'])) }),
      ),
    },
    GetHostDrain: { refusedByConstruction: false, input: fc.record({ host_id: anyHost }) },
    UndrainHost: { refusedByConstruction: true, input: fc.oneof(fc.record({ host_id: unknownHost, request_id: anyRequestId }), fc.record({ host_id: realHost, request_id: badRequestId })) },
    // The hosts are up: a removal is refused.
    RemoveHost: { refusedByConstruction: true, input: fc.record({ host_id: anyHost, request_id: anyRequestId }) },
    CreateBackup: {
      refusedByConstruction: true,
      input: fc.oneof(fc.record({ id: unknownWorkload, request_id: anyRequestId, memory: bool }), fc.record({ id: realRef, request_id: badRequestId, memory: bool })),
    },
    ListBackups: { refusedByConstruction: false, input: fc.record({ workload: fc.oneof(fc.constant(''), anyWorkloadRef, text) }) },
    DeleteBackup: {
      refusedByConstruction: true,
      input: fc.oneof(fc.record({ id: unknownBackup, request_id: anyRequestId }), fc.record({ id: fc.constant(world.backupId), request_id: badRequestId })),
    },
    VerifyBackup: { refusedByConstruction: false, input: fc.record({ id: fc.oneof(fc.constant(world.backupId), unknownBackup), request_id: anyRequestId }) },
    RestoreBackup: {
      refusedByConstruction: true,
      input: fc.oneof(
        fc.record({ id: unknownBackup, request_id: anyRequestId, as_name: fc.oneof(fc.constant(''), freshName, text), host_id: fc.oneof(fc.constant(''), anyHost) }),
        fc.record({ id: fc.constant(world.backupId), request_id: badRequestId, as_name: fc.oneof(fc.constant(''), freshName), host_id: fc.constant('') }),
        fc.record({ id: fc.constant(world.backupId), request_id: anyRequestId, as_name: nonEmptyNotMatching(DNS_LABEL), host_id: fc.oneof(fc.constant(''), anyHost) }),
        fc.record({ id: fc.constant(world.backupId), request_id: anyRequestId, as_name: fc.oneof(fc.constant(''), freshName), host_id: nonEmptyNotMatching(HOST_ID) }),
        // The backed-up workload's own name is taken.
        fc.record({ id: fc.constant(world.backupId), request_id: fc.constant(''), as_name: fc.constantFrom('', ...world.workloads.map((w) => w.name)), host_id: fc.constant('') }),
      ),
    },
    PlanRebalance: { refusedByConstruction: false, input: fc.record({ goal: fc.oneof(fc.constantFrom('consolidate', 'balance'), lookalikeOf(['consolidate', 'balance']), text) }) },
    PruneBackups: {
      // A dry run changes nothing; any other is refused for its workload or its rules.
      refusedByConstruction: false,
      input: fc.oneof(
        fc.record({ workload: fc.oneof(anyWorkloadRef, text), keep_last: rule, keep_daily: rule, keep_weekly: rule, dry_run: fc.constant(true), request_id: anyRequestId }),
        fc.tuple(notMatching(DNS_LABEL), fc.record({ keep_last: rule, keep_daily: rule, keep_weekly: rule }), anyRequestId).map(([workload, r, request_id]) => ({ workload, ...r, dry_run: false, request_id })),
        fc.tuple(fc.oneof(realRef, freshName), badRules, anyRequestId).map(([workload, r, request_id]) => ({ workload, ...r, dry_run: false, request_id })),
        fc.tuple(realRef, fc.record({ keep_last: fc.integer({ min: 1, max: 1000 }), keep_daily: fc.constant(0), keep_weekly: fc.constant(0) }), badRequestId).map(([workload, r, request_id]) => ({ workload, ...r, dry_run: false, request_id })),
      ),
    },
    CreateToken: {
      refusedByConstruction: true,
      input: fc.oneof(
        fc.record({ request_id: anyRequestId, role: fc.oneof(notIn(['viewer', 'operator', 'admin']), lookalikeOf(['viewer', 'operator', 'admin'])), tenant: fc.oneof(fc.constant(''), text), ttl_seconds: uint64, description: text }),
        fc.record({ request_id: anyRequestId, role: fc.constantFrom('viewer', 'operator', 'admin'), tenant: nonEmptyNotMatching(DNS_LABEL), ttl_seconds: uint64, description: text }),
        fc.record({ request_id: anyRequestId, role: fc.constantFrom('viewer', 'operator', 'admin'), tenant: fc.constant(''), ttl_seconds: fc.bigInt({ min: 315_360_001n, max: 2n ** 64n - 1n }).map(String), description: text }),
        fc.record({ request_id: anyRequestId, role: fc.constantFrom('viewer', 'admin'), tenant: fc.constant(''), ttl_seconds: fc.constant('0'), description: fc.constantFrom('x'.repeat(201), '<'.repeat(300)) }),
        fc.record({ request_id: badRequestId, role: fc.constantFrom('viewer', 'admin'), tenant: fc.constant(''), ttl_seconds: fc.constant('60'), description: text.filter((d) => d.length <= 200) }),
      ),
    },
    ListTokens: { refusedByConstruction: false, input: fc.constant({}) },
    RevokeToken: {
      refusedByConstruction: true,
      input: fc.oneof(
        fc.record({ request_id: anyRequestId, id: unknownRef([world.tokenId], fc.stringMatching(/^[0-9a-f]{16}$/)) }),
        fc.record({ request_id: badRequestId, id: fc.constant(world.tokenId) }),
        fc.record({ request_id: anyRequestId, id: lookalikeOf([world.tokenId]) }),
      ),
    },
  };
}

// ---- the agent API ------------------------------------------------------------

/** What exists on the agent the agent fuzz runs against. */
export interface AgentWorld {
  hostId: string;
  /** Its workloads: id, name and kind; the first is running, the second stopped. */
  workloads: { id: string; name: string; kind: string }[];
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The generated calls of every method of virtfleet.v1.Agent, given what the agent holds. */
export function agentFuzz(world: AgentWorld): Record<string, MethodFuzz> {
  const ids = world.workloads.map((w) => w.id);
  const realId = fc.constantFrom(...ids);
  const freshId = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/).filter((id) => !ids.includes(id));
  const unknownWorkload = unknownRef(ids, fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/));
  const anyWorkload = fc.oneof(realId, unknownWorkload);
  const freshName = fc.stringMatching(/^fza-[a-z0-9]{1,16}$/);
  const timeout = fc.oneof(fc.integer({ min: 0, max: 3600 }), int32);
  const badTimeout = fc.oneof(fc.integer({ min: -(2 ** 31), max: -1 }), fc.integer({ min: 3601, max: 2 ** 31 - 1 }));

  /** A create that is refused: an id or the spec breaks a rule, or the id is taken by another workload. */
  const badCreate = fc.oneof(
    fc.record({ command_id: badCommandId, workload_id: fc.oneof(freshId, text), spec: anySpec(freshName) }),
    fc.record({ command_id: opaqueId, workload_id: notMatching(WORKLOAD_ID), spec: anySpec(freshName) }),
    fc.record({ command_id: opaqueId, workload_id: fc.oneof(freshId, realId), spec: brokenSpec(freshName) }),
    fc.record({ command_id: opaqueId, workload_id: fc.oneof(freshId, realId) }),
    fc.record({ command_id: opaqueId, workload_id: realId, spec: validContainerSpec(freshName) }),
  );
  /** A lifecycle command that is refused, or a delete of a workload the host does not hold (done, changing nothing). */
  const badCommand = (deleting: boolean) =>
    fc.oneof(
      fc.record({ command_id: fc.oneof(opaqueId, badCommandId), workload_id: deleting ? notMatching(WORKLOAD_ID) : unknownWorkload, timeout_seconds: int32, force: bool }),
      fc.record({ command_id: badCommandId, workload_id: realId, timeout_seconds: timeout, force: bool }),
      fc.record({ command_id: opaqueId, workload_id: realId, timeout_seconds: badTimeout, force: bool }),
      ...(deleting ? [fc.record({ command_id: opaqueId, workload_id: unknownWorkload, timeout_seconds: timeout, force: bool })] : []),
    );
  const command = (action: string, refusal: fc.Arbitrary<unknown>): MethodFuzz => ({ refusedByConstruction: action !== 'delete', input: refusal });
  const target = fc.record({
    host_id: fc.oneof(hostIdLike, text),
    hypervisor_uri: fc.oneof(fc.constantFrom('qemu+tcp://10.0.0.2/system', 'qemu+tcp://$(id)/system', 'qemu:///system', 'qemu+ssh://root@h/system?command=`id`'), text),
    transfer_uri: fc.oneof(fc.constantFrom('tcp://10.0.0.2', 'tcp://;reboot', 'tcp://[::1]'), text),
    files: fc.array(fc.record({ role: fc.oneof(fc.constantFrom('disk:root', 'seed', 'console-log'), text), path: fc.oneof(fc.constantFrom('/var/lib/virtfleet/x.qcow2', '/../../etc/shadow', '/tmp/a b'), text) }), { maxLength: 3 }),
    backend_name: fc.oneof(fc.constantFrom('vf-abc', '$(id)', '../x'), text),
  });
  const file = (role: string, data: Buffer) => [{ file: { role, size_bytes: data.length } }, { data }, { file_end: { sha256: sha256(data) } }];
  const data = fc.uint8Array({ minLength: 1, maxLength: 256 }).map((b) => Buffer.from(b));
  const header = (id: fc.Arbitrary<string>, spec: fc.Arbitrary<unknown>) => fc.record({ command_id: opaqueId, workload_id: id, spec }).map((h) => ({ header: h }));
  const goodHeader = header(freshId, validContainerSpec(freshName));

  return {
    Ping: { refusedByConstruction: false, input: fc.record({ payload: fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)) }) },
    GetHostInfo: { refusedByConstruction: false, input: fc.constant({}) },
    CreateWorkload: { refusedByConstruction: true, input: badCreate },
    StartWorkload: command('start', badCommand(false)),
    StopWorkload: command('stop', badCommand(false)),
    PauseWorkload: command('pause', badCommand(false)),
    ResumeWorkload: command('resume', badCommand(false)),
    DeleteWorkload: command('delete', badCommand(true)),
    GetWorkload: { refusedByConstruction: false, input: fc.record({ workload_id: fc.oneof(anyWorkload, text) }) },
    ListWorkloads: { refusedByConstruction: false, input: fc.constant({}) },
    // A delete of a workload the host does not hold is done, changing nothing; everything else here is refused.
    RunCommands: {
      refusedByConstruction: false,
      input: fc.oneof(
        { weight: 9, arbitrary: fc.array(fc.oneof(badCreate.map((create) => ({ command: 'create', create })), ...(['start', 'stop', 'pause', 'resume', 'delete'] as const).map((a) => badCommand(a === 'delete').map((c) => ({ command: a, [a]: c }))), fc.constant({})), { maxLength: 6 }).map((commands) => ({ commands })) },
        { weight: 1, arbitrary: fc.constant({ commands: Array.from({ length: 257 }, (_, i) => ({ command: 'start', start: { command_id: `c${i}`, workload_id: 'nope' } })) }) },
      ),
    },
    // The fake driver keeps no logs.
    WorkloadLogs: { refusedByConstruction: false, alsoExpected: [status.UNIMPLEMENTED], input: fc.record({ workload_id: fc.oneof(anyWorkload, text), options: fc.record({ follow: bool, tail_lines: int32, since: text }, { requiredKeys: [] }) }) },
    // The fake driver cannot live-migrate: a valid request for a workload it could take is UNIMPLEMENTED.
    PrepareIncomingMigration: {
      refusedByConstruction: true,
      alsoExpected: [status.UNIMPLEMENTED],
      input: fc.oneof(badCreate, fc.record({ command_id: opaqueId, workload_id: freshId, spec: validContainerSpec(freshName) })),
    },
    MigrateWorkload: {
      refusedByConstruction: true,
      alsoExpected: [status.UNIMPLEMENTED],
      input: fc.record({ command_id: fc.oneof(opaqueId, badCommandId), workload_id: fc.oneof(anyWorkload, text), target, max_downtime_ms: uint32, bandwidth_mib_s: uint32 }),
    },
    AbortMigration: { refusedByConstruction: true, alsoExpected: [status.UNIMPLEMENTED], input: fc.record({ workload_id: fc.oneof(anyWorkload, text) }) },
    // Discarding what a migration prepared for a workload the host never saw removes nothing, and is done.
    DiscardIncomingMigration: { refusedByConstruction: false, input: fc.record({ workload_id: fc.oneof(anyWorkload, text) }) },
    // Reads: a stopped workload's state streams, a running one's is FAILED_PRECONDITION.
    ExportWorkloadState: { refusedByConstruction: false, input: fc.record({ workload_id: fc.oneof(anyWorkload, text), memory: bool }) },
    BackupWorkloadState: { refusedByConstruction: false, input: fc.record({ workload_id: fc.oneof(anyWorkload, text), memory: bool }) },
    ImportWorkloadState: {
      refusedByConstruction: true,
      input: fc.oneof(
        // A header that breaks a rule, then a well-formed file.
        fc.tuple(fc.oneof(badCreate.map((h) => ({ header: h })), header(realId, validContainerSpec(freshName))), data).map(([h, d]) => [h, ...file('image', d)]),
        // A good header, then files that are not: wrong digest, wrong size, unknown or repeated role, out of order.
        fc.tuple(goodHeader, data).map(([h, d]) => [h, { file: { role: 'image', size_bytes: d.length } }, { data: d }, { file_end: { sha256: sha256(Buffer.concat([d, d])) } }]),
        fc.tuple(goodHeader, data, fc.constantFrom(-1, 0.5, NaN, 2 ** 41, 1e308)).map(([h, d, size]) => [h, { file: { role: 'image', size_bytes: size } }, { data: d }, { file_end: { sha256: sha256(d) } }]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, { file: { role: 'image', size_bytes: d.length + 1 } }, { data: d }, { file_end: { sha256: sha256(d) } }]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, { file: { role: 'image', size_bytes: d.length - 1 } }, { data: d }, { file_end: { sha256: sha256(d) } }]),
        fc.tuple(goodHeader, notMatching(STATE_FILE_ROLE), data).map(([h, role, d]) => [h, ...file(role, d)]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, ...file('image', d), ...file('image', d)]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, { data: d }]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, { file: { role: 'image', size_bytes: d.length } }, { data: d }]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, ...file('image', d), h]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, { file_end: { sha256: sha256(d) } }]),
        fc.tuple(goodHeader, data).map(([h, d]) => [h, {}, ...file('image', d)]),
        data.map((d) => file('image', d)),
        fc.constant([]),
      ),
    },
  };
}
