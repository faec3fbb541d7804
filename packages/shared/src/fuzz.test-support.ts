import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readDocument } from './config.js';
import { InvalidArgumentError } from './errors.js';
import { fieldPathSegment, InvalidFieldsError } from './validation.js';

/*
 * Fuzzing support shared by the config loaders' fuzz tests (issue 12,
 * "Hardening the inputs"), and the outcome helpers the spec fuzz test uses
 * too. Test code only: packages/shared's tsconfig leaves *.test-support.ts out
 * of the build, and fast-check is a root devDependency.
 */

export const RUNS = 10_000;

// ---- outcomes ---------------------------------------------------------------

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };
export function attempt<T>(fn: () => T): Outcome<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * What a rejection says: its class, the fields it names and its message
 * ('accepted' and none for an acceptance). An InvalidArgumentError that is no
 * InvalidFieldsError names its own field only with `plainField`.
 */
export function rejection(outcome: Outcome<unknown>, { plainField = false }: { plainField?: boolean } = {}): { kind: string; fields: string[]; message: string } {
  if (outcome.ok) return { kind: 'accepted', fields: [], message: '' };
  const e = outcome.error;
  if (e instanceof InvalidFieldsError) return { kind: 'InvalidArgumentError', fields: e.problems.map((p) => p.field), message: e.message };
  if (e instanceof InvalidArgumentError) return { kind: 'InvalidArgumentError', fields: plainField ? [e.field] : [], message: e.message };
  return { kind: `${e instanceof Error ? e.name : typeof e}: ${e instanceof Error ? e.message : String(e)}`, fields: [], message: '' };
}

// ---- structures -------------------------------------------------------------

export type Path = (string | number)[];

/** 10,000 levels of nesting, built without recursion. */
export function deepObject(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}

/** Every path into a document (objects and arrays alike), so a mutation can land anywhere. */
export function pathsOf(value: unknown, prefix: Path = []): Path[] {
  if (typeof value !== 'object' || value === null) return [prefix];
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return [prefix, ...entries.flatMap(([k, v]) => pathsOf(v, [...prefix, k]))];
}

/** A copy of a config with one value set (making the sections on the way that it leaves out) or deleted. */
export function mutate(base: Record<string, unknown>, op: 'set' | 'delete', path: Path, value?: unknown): Record<string, unknown> {
  const copy = structuredClone(base);
  let parent: unknown = copy;
  for (const key of path.slice(0, -1)) {
    const into = parent as Record<string | number, unknown>;
    if (op === 'set' && into[key] === undefined) into[key] = {}; // a section the example leaves out
    parent = into[key];
  }
  const last = path[path.length - 1];
  if (typeof parent !== 'object' || parent === null || last === undefined) return copy;
  if (op === 'delete') delete (parent as Record<string | number, unknown>)[last];
  else (parent as Record<string | number, unknown>)[last] = value;
  return copy;
}

/** The changed field, a parent or child of it, or a sibling (a refinement over one section, such as failover's fractions). */
export function related(field: string, mutated: Path): boolean {
  const m = mutated.map(fieldPathSegment);
  const path = m.join('.');
  const parent = m.slice(0, -1).join('.');
  return field === path || field.startsWith(`${path}.`) || path.startsWith(`${field}.`) || (parent !== '' && field.startsWith(`${parent}.`));
}

// ---- inputs for configs -----------------------------------------------------

const HOSTILE = [
  '<', '>', '&', "'", '"', '`', '$(id)', '${HOME}', ';', '|', '&&', '\\', '<script>', ']]>', '../', '../../etc/passwd', '/etc/shadow', '/', '\0', '%00', 'C:\\Windows',
  '\n', '\r\n', '\t', ' ', '\u007f', '\u0430', '\u0435', '\u043e', '\u200b', '\u200d', '\u200f', '\u202e', '\ufeff', '\u0131', '\u212a', '\uff57', '😀', '-', '_', '.', '..', ':', '*', '>', '#', '{', '[',
];
export const hostileString = fc
  .array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...HOSTILE) }, { weight: 2, arbitrary: fc.string({ maxLength: 6 }) }), { maxLength: 6 })
  .map((parts) => parts.join(''));
const LOOKALIKE: Record<string, string> = { a: '\u0430', e: '\u0435', o: '\u043e', c: '\u0441', i: '\u0456', k: '\u212a', s: '\u0455', '-': '\u2010', '1': 'l' };
const INVISIBLE = ['\u200b', '\u200d', '\u200e', '\u200f', '\u202e', '\ufeff', '\u00ad', ' ', '\t', '\0'];
const idLike = fc.stringMatching(/^[A-Za-z0-9_.-]{1,63}$/);

/** Names to try: valid, a look-alike or an invisible character away from valid, hostile, too long, and `extra` ones. */
export function nameCandidateArb(extra: readonly string[] = []): fc.Arbitrary<string> {
  return fc.oneof(
    idLike,
    fc.tuple(idLike, fc.nat(), fc.boolean(), fc.constantFrom(...INVISIBLE)).map(([name, at, swap, mark]) => {
      const i = at % name.length;
      return swap ? name.slice(0, i) + (LOOKALIKE[name[i]!] ?? '\u0430') + name.slice(i + 1) : name.slice(0, i) + mark + name.slice(i);
    }),
    hostileString,
    fc.constantFrom('', '.', '..', 'a'.repeat(63), 'a'.repeat(64), 'a'.repeat(65), 'x'.repeat(70_000)),
    ...(extra.length > 0 ? [fc.constantFrom(...extra)] : []),
  );
}

export const wrongType = fc.oneof(fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 2 ** 53, 1e308, -0, '', '0', '10000', [], {}, [[]], { '': '' }), fc.double({ noNaN: true }), fc.integer(), fc.jsonValue({ maxDepth: 3 }));

/** Any value a config field may be set to. */
export function valueArbOf(nameCandidate: fc.Arbitrary<string>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 16, arbitrary: wrongType },
    { weight: 16, arbitrary: hostileString },
    { weight: 8, arbitrary: nameCandidate },
    // Rare: oversized values make a run take milliseconds.
    { weight: 1, arbitrary: fc.constantFrom<unknown>('x'.repeat(70_000), Array.from({ length: 300 }, (_, i) => `nats://h${i}:4222`), Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 1]))) },
    { weight: 4, arbitrary: fc.dictionary(hostileString, wrongType, { maxKeys: 3 }) },
  );
}

/** Writes config texts into a fresh temporary directory (tmpfs where there is one), removed after the tests. */
export function configWriter(prefix: string): { dir: string; write(text: string): string } {
  // tmpfs where there is one: ten thousand writes to a slow disk would take most of the run.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let files = 0;
  return {
    dir,
    write(text: string): string {
      const path = join(dir, `c${files++ % 16}.yaml`);
      writeFileSync(path, text);
      return path;
    },
  };
}

// ---- the config loader's fuzz tests -----------------------------------------

export interface ConfigFuzzOptions<T> {
  /** The loader's name, for the describe block. */
  name: string;
  load: (path: string | undefined, overrides?: Record<string, unknown>) => T;
  /** The known-good config: a file in deploy/config/. */
  deployFile: string;
  /** The temporary directory's name prefix. */
  tempPrefix: string;
  /** Keys to add, besides hostile ones: near-misses of the real ones. */
  addKeys: string[];
  /** The top-level key a 10,000-level JSON text nests under. */
  deepTextKey: string;
  /** Names the loader puts into subjects, keys and paths, each with its documented rule. */
  named: { path: Path; rule: { test(s: string): boolean } }[];
  /** Where a 10,000-level object goes beside a name; the problems it causes are named under it. */
  deepOverride: Path;
  /** Text rows (such as a self-referencing alias in one of its sections) among the fixed damaged texts. */
  extraTextRows: string[];
  /** Name candidates besides the common ones (such as paths). */
  extraNameCandidates?: string[];
}

/**
 * Declares the fuzz tests of a config loader: the deploy example, changed one
 * place at a time, written out as YAML or JSON (or damaged as text) and read
 * back. The loader returns a config or throws InvalidArgumentError naming the
 * file and the field, and a config it returns loads again to itself; a name
 * is accepted exactly when it matches its rule.
 */
export function describeConfigFuzz<T>(options: ConfigFuzzOptions<T>): void {
  const { name, load, named } = options;
  const nameCandidate = nameCandidateArb(options.extraNameCandidates);
  const valueArb = valueArbOf(nameCandidate);

  describe(`${name}, fuzzed`, () => {
    const { dir, write: writeConfig } = configWriter(options.tempPrefix);

    // The deploy example, the known-good config. Where the loader wants gRPC
    // TLS or plaintext said out loud (the mutual TLS work), plaintext is said.
    const DEPLOY = fileURLToPath(new URL(`../../../deploy/config/${options.deployFile}`, import.meta.url));
    const GOOD = ((): Record<string, unknown> => {
      const doc = readDocument(DEPLOY) as Record<string, unknown>;
      if (attempt(() => load(DEPLOY)).ok) return doc;
      return mutate(doc, 'set', ['grpc', 'insecure'], true);
    })();
    const PATHS = pathsOf(GOOD).filter((p) => p.length > 0);
    const mutation = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), path: fc.constantFrom(...PATHS), value: valueArb }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), path: fc.constantFrom(...PATHS), value: fc.constant(undefined) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant('set' as const),
          path: fc.tuple(fc.constantFrom<Path>([], ...PATHS), fc.oneof(hostileString, fc.constantFrom(...options.addKeys))).map(([p, k]) => [...p, k]),
          value: valueArb,
        }),
      },
    );

    const GOOD_TEXT = stringify(GOOD);
    const DEEP_TEXT = ['['.repeat(10_000) + ']'.repeat(10_000), `{"${options.deepTextKey}":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`];
    /** A config file: the example changed in one place and written out, the same text damaged, or hostile text outright. */
    const configFile = fc.oneof(
      { weight: 240, arbitrary: fc.tuple(mutation, fc.nat(3).map((n) => n > 0)).map(([m, json]) => ({ doc: mutate(GOOD, m.op, m.path, m.value), json, mutated: m.path as Path | undefined })).map(({ doc, json, mutated }) => ({ text: json ? JSON.stringify(doc) : stringify(doc), mutated })) },
      {
        weight: 60,
        arbitrary: fc.tuple(fc.nat(), fc.nat(), hostileString).map(([at, cut, junk]) => {
          const text = GOOD_TEXT;
          const i = at % (text.length + 1);
          return { text: text.slice(0, i) + junk + text.slice(i + (cut % 4)), mutated: undefined };
        }),
      },
      { weight: 30, arbitrary: hostileString.map((text) => ({ text, mutated: undefined })) },
      { weight: 20, arbitrary: fc.constantFrom('', 'null', '[]', '[1, 2]', '- a\n- b\n', '42', '"x"', '---\n---\n', 'id: a\nid: b\n', ...options.extraTextRows, '!!binary aGk=', 'x'.repeat(70_000)).map((text) => ({ text, mutated: undefined })) },
      { weight: 1, arbitrary: fc.constantFrom(...DEEP_TEXT).map((text) => ({ text, mutated: undefined })) },
    );

    it(`loads a config file or throws InvalidArgumentError naming the file and field, for ${RUNS} files`, () => {
      fc.assert(
        fc.property(configFile, ({ text, mutated }) => {
          const path = writeConfig(text);
          const outcome = attempt(() => load(path));
          const r = rejection(outcome);
          expect(r.kind, 'only InvalidArgumentError may escape').toMatch(/^(accepted|InvalidArgumentError)$/);
          expect(r.kind === 'accepted' || r.message.startsWith(`${path}: `), `${r.message} names the file`).toBe(true);
          expect(r.kind === 'accepted' || mutated === undefined || r.fields.some((f) => related(f, mutated)), `${r.message} should name ${mutated?.join('.')}`).toBe(true);
          const again = outcome.ok ? attempt(() => load(undefined, outcome.value as Record<string, unknown>)) : outcome;
          expect(again, 'an accepted config loads again to itself').toEqual(outcome);
        }),
        { numRuns: RUNS },
      );
    }, 60_000);

    const deepField = options.deepOverride.join('.');
    it(`accepts a name exactly when it matches its rule (look-alikes, invisible characters, hostile text), for ${RUNS} names`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...named), nameCandidate, fc.boolean(), ({ path, rule }, name, deep) => {
          // Given as overrides (as command-line flags are), so the name reaches the schema unchanged by any file encoding.
          const withName = mutate(GOOD, 'set', path, name);
          const overrides = deep ? mutate(withName, 'set', options.deepOverride, deepObject(10_000)) : withName;
          const r = rejection(attempt(() => load(undefined, overrides)));
          const field = path.join('.');
          expect(r.kind, `${field} = ${JSON.stringify(name)}`).toBe(rule.test(name) && !deep ? 'accepted' : 'InvalidArgumentError');
          expect(r.fields.every((f) => f === field || (deep && f.startsWith(deepField))), `${r.message} names ${field}`).toBe(true);
        }),
        { numRuns: RUNS },
      );
    }, 60_000);

    it.each([
      { name: 'a missing file', path: join(dir, 'missing.yaml') },
      { name: 'a directory', path: dir },
      { name: 'a path with NUL', path: `${dir}/a\0b.yaml` },
      { name: 'a traversal to nowhere', path: `${dir}/../../../../nonexistent/../x.yaml` },
    ])('refuses $name with InvalidArgumentError naming it', ({ path }) => {
      expect(() => load(path)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', field: path }));
    });
  });
}
