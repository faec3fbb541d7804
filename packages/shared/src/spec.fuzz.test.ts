import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseDocument } from './config.js';
import { attempt, deepObject, type Outcome, pathsOf, rejection } from './fuzz.test-support.js';
import { parseWorkloadSpec } from './spec.js';
import { DNS_LABEL, fieldPathSegment } from './validation.js';
import { MAX_YAML_DEPTH } from './yaml-depth.js';

/*
 * Fuzzing the workload spec parser (issue 12, "Hardening the inputs"): the
 * API's objects, and the YAML/JSON spec files the CLI reads with
 * parseWorkloadSpec(readDocument(file), 'file:'). Whatever comes in, the
 * parser returns a spec or throws InvalidArgumentError naming the field, and
 * a spec it returns parses again to itself.
 */

const RUNS = 10_000;

// ---- inputs -----------------------------------------------------------------

/** Pieces of hostile text: markup, shell, traversal, control and invisible characters, look-alikes. */
const HOSTILE = [
  '<', '>', '&', "'", '"', '`', '$(id)', '${HOME}', ';', '|', '&&', '\\', '<script>', ']]>', '<!ENTITY x SYSTEM "file:///etc/passwd">', '&amp;',
  '../', '../../etc/passwd', '/etc/shadow', '/', '\0', 'a\0b', '%00', '%2e%2e%2f', 'C:\\Windows', '~root',
  '\n', '\r\n', '\t', ' ', '\u007f', '\u0085', '\u2028',
  '\u0430', '\u0435', '\u043e', '\u0440', '\u0441', // Cyrillic а е о р с, which look Latin
  '\u200b', '\u200d', '\u200e', '\u200f', '\u202e', '\u2066', '\ufeff', // zero-width and direction marks
  '\u0131', '\u212a', '\uff57', '\u0301', '\ud800', '😀', '-', '_', '.', ':', '*', '>', '#', '{', '[', '---', '!!binary',
];
const hostileString = fc
  .array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...HOSTILE) }, { weight: 2, arbitrary: fc.string({ maxLength: 6 }) }, { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }) }), { maxLength: 6 })
  .map((parts) => parts.join(''));

/** Look-alikes of a valid name: one character swapped for a homoglyph, an invisible character put in, case or width changed. */
const LOOKALIKE: Record<string, string> = { a: '\u0430', e: '\u0435', o: '\u043e', p: '\u0440', c: '\u0441', x: '\u0445', i: '\u0456', k: '\u212a', s: '\u0455', '-': '\u2010', '0': '\u041e', '1': 'l' };
const INVISIBLE = ['\u200b', '\u200c', '\u200d', '\u200e', '\u200f', '\u202e', '\u2066', '\ufeff', '\u00ad', '\u0301', ' ', '\t', '\n', '\0'];
function lookalikeOf(valid: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(valid, fc.nat(), fc.constantFrom('swap', 'insert', 'upper', 'wide', 'same'), fc.constantFrom(...INVISIBLE)).map(([name, at, how, mark]) => {
    const i = name.length === 0 ? 0 : at % name.length;
    if (how === 'swap') return name.slice(0, i) + (LOOKALIKE[name[i] ?? ''] ?? '\u0430') + name.slice(i + 1);
    if (how === 'insert') return name.slice(0, i) + mark + name.slice(i);
    if (how === 'upper') return name.toUpperCase();
    if (how === 'wide') return [...name].map((ch) => (/[a-z0-9]/.test(ch) ? String.fromCodePoint(ch.codePointAt(0)! + 0xfee0) : ch)).join('');
    return name;
  });
}
const dnsLabel = fc.stringMatching(DNS_LABEL);
/** Names to try where a spec names something: valid, look-alike, hostile, too long. */
const nameCandidate = fc.oneof(dnsLabel, lookalikeOf(dnsLabel), hostileString, fc.constantFrom('', 'a'.repeat(63), 'a'.repeat(64), '-a', 'a-', 'A', 'web_1', 'web.1', 'root', 'none', 'x'.repeat(70_000)));

function deepArray(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}
const DEEP = [deepObject(10_000), deepArray(10_000)];
const OVERSIZED = ['x'.repeat(70_000), Array.from({ length: 300 }, (_, i) => `arg${i}`), Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`K${i}`, 'v'])), Array.from({ length: 40 }, (_, i) => ({ name: `d${i}`, size_gib: 1 }))];
const wrongType = fc.oneof(
  fc.constantFrom<unknown>(null, undefined, true, false, 0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, -0, '', '0', '1e3', [], {}, [[]], { '': '' }),
  fc.double(),
  fc.integer(),
  fc.jsonValue({ maxDepth: 3 }),
);
/** Any value a field may be set to; `deep` adds the 10,000-level ones (which cannot be written out as text). */
const valueArb = (deep: boolean): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 4, arbitrary: wrongType },
    { weight: 4, arbitrary: hostileString },
    { weight: 2, arbitrary: nameCandidate },
    { weight: 1, arbitrary: fc.constantFrom(...(deep ? DEEP : []), ...OVERSIZED) },
    { weight: 1, arbitrary: fc.dictionary(hostileString, hostileString, { maxKeys: 3 }) },
    { weight: 1, arbitrary: fc.array(hostileString, { maxLength: 3 }) },
  );

/** Known-good specs: the README's and the tests' shapes and the example files operators copy. */
const EXAMPLES_DIR = fileURLToPath(new URL('../../../deploy/examples/', import.meta.url));
const GOOD: Record<string, unknown>[] = [
  { name: 'web', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.5, memory_mib: 64, command: ['/bin/sh', '-c', 'echo hi'], env: { A: 'b' }, labels: { tier: 'web' }, network: 'default', ports: [{ host_port: 8080, port: 80 }] },
  { name: 'db', kind: 'vm', vcpus: 2, memory_mib: 1024, disk_gib: 10, image: '/var/lib/virtfleet/images/db.qcow2', host_selector: { zone: 'a' } },
  {
    name: 'guest',
    kind: 'vm',
    vcpus: 1,
    memory_mib: 512,
    image: 'guest-disk',
    disks: [{ name: 'data', size_gib: 5 }],
    boot: { kernel: 'guest-kernel', initrd: 'guest-initrd', cmdline: 'console=ttyS0' },
    cloud_init: { user_data: '#cloud-config\nruncmd: [echo hi]\n', meta_data: 'instance-id: x\n', ssh_authorized_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me@laptop'] },
    domain_type: 'qemu',
    security: { isolation: 'tenant', min_trust_level: 2, required_features: ['secure-boot'], anti_affinity_group: 'db' },
    performance: { max_host_cpu_utilisation: 0.8, latency_class: 'low' },
    backup: { every: '1h', keep_last: 3 },
    tenant: 'team-a',
  },
  ...readdirSync(EXAMPLES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => parseDocument(readFileSync(`${EXAMPLES_DIR}${f}`, 'utf8'), f) as Record<string, unknown>),
];

type Mutation = { op: 'set' | 'delete'; path: (string | number)[]; value?: unknown } | { op: 'add'; path: (string | number)[]; value: unknown };
function mutate(base: Record<string, unknown>, m: Mutation): Record<string, unknown> {
  const copy = structuredClone(base);
  const parentPath = m.op === 'add' ? m.path.slice(0, -1) : m.path.slice(0, -1);
  let parent: unknown = copy;
  for (const key of parentPath) parent = (parent as Record<string | number, unknown>)[key];
  const last = m.path[m.path.length - 1];
  if (typeof parent !== 'object' || parent === null || last === undefined) return copy;
  const target = parent as Record<string | number, unknown>;
  if (m.op === 'delete') delete target[last];
  else target[last] = m.value;
  return copy;
}

/** A known-good spec with one thing changed: a value replaced, a field removed, a field (or map key) added. */
const mutatedSpecArb = (deep: boolean) => fc
  .integer({ min: 0, max: GOOD.length - 1 })
  .chain((i) => {
    const base = GOOD[i]!;
    const paths = pathsOf(base).filter((p) => p.length > 0);
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), path: fc.constantFrom(...paths), value: valueArb(deep) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), path: fc.constantFrom(...paths) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant('add' as const),
          path: fc.tuple(fc.constantFrom<(string | number)[]>([], ...paths), fc.oneof(hostileString, fc.constantFrom('labels', 'env', 'ports', 'disks', 'boot', 'network', 'failover', '__proto__', 'constructor', '_performance', 'toString'))).map(([p, k]) => [...p, k]),
          value: valueArb(deep),
        }),
      },
      { weight: 1, arbitrary: fc.constant<Mutation>({ op: 'set', path: ['name'], value: 'unchanged' }) },
    );
    return fc.tuple(fc.constant(base), mutation);
  })
  .map(([base, m]) => ({ input: mutate(base, m), mutated: m.path }));
const mutatedSpec = mutatedSpecArb(true);

// ---- checks -----------------------------------------------------------------

/** What a rejection says: its class and the fields it names, an InvalidArgumentError's own field included. */
const rejectionOf = (outcome: Outcome<unknown>) => rejection(outcome, { plainField: true });

/**
 * Whether a problem's field is the mutated one, or one the spec ties to it:
 * a parent or child of it, a sibling (a refinement over one object, such as a
 * backup's keep_* counts), or what `kind` decides applies (image, vcpus,
 * command, env and the vm-only fields) and what `network` decides for ports.
 */
function related(field: string, mutated: (string | number)[]): boolean {
  const m = mutated.map(fieldPathSegment);
  const path = m.join('.');
  const parent = m.slice(0, -1).join('.');
  if (field === path || field.startsWith(`${path}.`) || path.startsWith(`${field}.`)) return true; // the field, or a parent or child of it
  if (parent !== '' && field.startsWith(`${parent}.`)) return true; // a sibling under the same parent
  const top = field.split('.')[0];
  if (m[0] === 'kind') return true;
  if (m[0] === 'network' && top === 'ports') return true;
  // A port or disk name used twice is reported at the second; cloud-init's shorthands depend on its user-data.
  return (m[0] === 'ports' || m[0] === 'disks' || m[0] === 'cloud_init') && top === m[0];
}

describe('parseWorkloadSpec, fuzzed', () => {
  it(`returns a spec or throws InvalidArgumentError naming the changed field, for ${RUNS} mutated specs`, () => {
    fc.assert(
      fc.property(mutatedSpec, ({ input, mutated }) => {
        const outcome = attempt(() => parseWorkloadSpec(input));
        const r = rejectionOf(outcome);
        expect(r.kind, 'only InvalidArgumentError may escape').toMatch(/^(accepted|InvalidArgumentError)$/);
        const fieldsNamed = r.fields.map((f) => f.replace(/^spec\./, ''));
        expect(r.kind === 'accepted' || fieldsNamed.some((f) => related(f, mutated)), `${r.message} should name ${mutated.join('.')}`).toBe(true);
        expect(r.fields.every((f) => f === 'spec' || f.startsWith('spec.')), `fields carry the prefix: ${r.fields.join(', ')}`).toBe(true);
        const again = outcome.ok ? attempt(() => parseWorkloadSpec(outcome.value)) : outcome;
        expect(again, 'an accepted spec parses again to itself').toEqual(outcome);
        const names = outcome.ok ? [outcome.value.name, outcome.value.tenant] : [];
        expect(names.every((n) => DNS_LABEL.test(n)), `accepted names ${JSON.stringify(names)}`).toBe(true);
      }),
      { numRuns: RUNS },
    );
  }, 60_000);

  // Each field that names something, with its documented rule; the rest of the spec is valid.
  const NAMED_FIELDS: { path: (string | number)[]; rule: (s: string) => boolean }[] = [
    { path: ['name'], rule: (s) => DNS_LABEL.test(s) },
    { path: ['tenant'], rule: (s) => s === '' || DNS_LABEL.test(s) }, // '' is proto3's unset: the default tenant
    { path: ['network'], rule: (s) => s === '' || DNS_LABEL.test(s) },
    { path: ['security', 'anti_affinity_group'], rule: (s) => s === '' || DNS_LABEL.test(s) },
    { path: ['disks', 0, 'name'], rule: (s) => DNS_LABEL.test(s) && s.length <= 32 && s !== 'root' },
  ];
  const guest = GOOD[2]!;
  it(`accepts a name exactly when it matches its rule (look-alikes, invisible characters, hostile text), for ${RUNS} names`, () => {
    fc.assert(
      fc.property(fc.constantFrom(...NAMED_FIELDS), nameCandidate, ({ path, rule }, name) => {
        const outcome = attempt(() => parseWorkloadSpec(mutate(guest, { op: 'set', path, value: name })));
        const r = rejectionOf(outcome);
        expect(r.kind, `${path.join('.')} = ${JSON.stringify(name)}`).toBe(rule(name) ? 'accepted' : 'InvalidArgumentError');
        expect(r.fields.every((f) => f === `spec.${path.join('.')}`), `${r.message} names spec.${path.join('.')}`).toBe(true);
      }),
      { numRuns: RUNS },
    );
  }, 60_000);
});

/** Raw spec-file text: a known-good spec written out as YAML or JSON and then damaged, or hostile text outright. */
const DEEP_TEXT = ['['.repeat(10_000) + ']'.repeat(10_000), '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000), Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'), '['.repeat(10_000)];
const ALIAS_BOMB = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
const specText = fc.oneof(
  { weight: 120, arbitrary: fc.tuple(mutatedSpecArb(false), fc.boolean()).map(([{ input }, json]) => (json ? JSON.stringify(input) ?? 'null' : stringify(input))) },
  {
    weight: 40,
    arbitrary: fc.tuple(mutatedSpecArb(false), fc.nat(), fc.nat(), hostileString).map(([{ input }, at, cut, junk]) => {
      const text = stringify(input);
      const i = at % (text.length + 1);
      return text.slice(0, i) + junk + text.slice(i + (cut % 4));
    }),
  },
  { weight: 20, arbitrary: hostileString },
  { weight: 18, arbitrary: fc.constantFrom(ALIAS_BOMB, '', '---\n---\n', 'name: a\nname: b\n', '!!js/function "x"', '? [a]\n: b', '*undefined', 'x'.repeat(70_000), '[[[[[[[[[[', '{"name": "web", "kind": "container"') },
  // Rare: reading one takes tens of milliseconds (the depth check reads every level).
  { weight: 1, arbitrary: fc.constantFrom(...DEEP_TEXT) },
);

describe('spec files (the CLI: parseWorkloadSpec(readDocument(file), "file:")), fuzzed', () => {
  it(`reads a spec file or throws InvalidArgumentError naming the file, for ${RUNS} texts`, () => {
    fc.assert(
      fc.property(specText, (text) => {
        const outcome = attempt(() => parseWorkloadSpec(parseDocument(text, 'web.yaml'), 'web.yaml:'));
        const r = rejectionOf(outcome);
        expect(r.kind, 'only InvalidArgumentError may escape').toMatch(/^(accepted|InvalidArgumentError)$/);
        expect(r.kind === 'accepted' || r.message.startsWith('web.yaml: '), r.message).toBe(true);
        const again = outcome.ok ? attempt(() => parseWorkloadSpec(parseDocument(stringify(outcome.value), 'again.yaml'))) : outcome;
        expect(again, 'an accepted spec written out as YAML reads back the same').toEqual(outcome);
      }),
      { numRuns: RUNS },
    );
  }, 60_000);
});

describe('regressions found by fuzzing', () => {
  const vm = { name: 'db', kind: 'vm', vcpus: 1, memory_mib: 64 };
  const nested = (levels: number) => `a: ${'['.repeat(levels)}${']'.repeat(levels)}`;
  // Before: yaml composed these recursively; a second such document aborted the Node process
  // ("FATAL ERROR: RegExpCompiler Allocation failed"), which nothing can catch.
  it.each([
    { name: 'a spec file 10,000 arrays deep, read three times', read: () => parseDocument(DEEP_TEXT[0]!, 'web.yaml'), field: 'web.yaml' },
    { name: 'a spec file 10,000 objects deep, read three times', read: () => parseDocument(DEEP_TEXT[1]!, 'web.yaml'), field: 'web.yaml' },
    { name: 'cloud-init user-data 10,000 levels deep, parsed three times', read: () => parseWorkloadSpec({ ...vm, cloud_init: { user_data: `#cloud-config\n${nested(10_000)}` } }), field: 'spec.cloud_init.user_data' },
    { name: 'cloud-init meta-data just past the limit', read: () => parseWorkloadSpec({ ...vm, cloud_init: { meta_data: nested(MAX_YAML_DEPTH) } }), field: 'spec.cloud_init.meta_data' },
    // Before: doc.toJS() threw yaml's own ReferenceError ("Excessive alias count"), which is no InvalidArgumentError.
    { name: 'cloud-init meta-data that expands aliases a billion-laughs way', read: () => parseWorkloadSpec({ ...vm, cloud_init: { meta_data: ALIAS_BOMB } }), field: 'spec.cloud_init.meta_data' },
  ])('$name: InvalidArgumentError on $field', ({ read, field }) => {
    for (let i = 0; i < 3; i++) expect(read).toThrow(expect.objectContaining({ name: expect.stringMatching(/^Invalid(Argument|Fields)Error$/), field }));
  });
  it('still reads YAML nested as deep as the limit', () => {
    expect(parseWorkloadSpec({ ...vm, cloud_init: { meta_data: nested(MAX_YAML_DEPTH - 1) } }).cloud_init?.meta_data).toBe(nested(MAX_YAML_DEPTH - 1));
  });
});
