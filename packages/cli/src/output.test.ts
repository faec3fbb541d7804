import { EventEmitter } from 'node:events';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError, parseWorkloadSpec, UnavailableError } from '@virtfleet/shared';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { age, cpus, errorText, formatted, forPeople, mib, OUTPUT_FORMATS, stdoutClosed, streamed, table, watchForClosedStdout, type OutputFormat } from './output.js';

describe('table', () => {
  it('aligns columns under upper-case headers without trailing spaces', () => {
    expect(table(['id', 'state'], [['a', 'running'], ['long-id', 'x']])).toBe('ID       STATE\na        running\nlong-id  x');
  });
});

describe('age and mib', () => {
  it.each([
    [5_000, '5s'],
    [300_000, '5m'],
    [3 * 3_600_000, '3h'],
    [3 * 86_400_000, '3d'],
  ])('%i ms ago is %s', (ms, want) => {
    expect(age(new Date(1_000_000_000_000 - ms).toISOString(), 1_000_000_000_000)).toBe(want);
  });
  it('formats memory', () => {
    expect(mib(64)).toBe('64Mi');
    expect(mib(20480)).toBe('20.0Gi');
  });
});

describe('exitCodeFor', () => {
  it.each([
    [new InvalidArgumentError('f', 'bad'), EXIT.invalidInput],
    [new NotFoundError('workload', 'x'), EXIT.notFound],
    [new UnavailableError('down'), EXIT.unavailable],
    [new FailedPreconditionError('busy'), EXIT.conflict],
    [new InternalError('boom'), EXIT.failure],
    [Object.assign(new Error('x'), { code: status.DEADLINE_EXCEEDED, details: 'x' }), EXIT.unavailable],
    [new Error('plain'), EXIT.failure],
  ])('maps %s to %i', (err, code) => {
    expect(exitCodeFor(err)).toBe(code);
  });
});

describe('errorText', () => {
  it('lists several bad fields one per line under their file', () => {
    const err = (() => {
      try {
        parseWorkloadSpec({ name: 'Web', kind: 'vm', vcpus: 0 }, 'web.yaml:');
      } catch (e) {
        return e;
      }
    })();
    expect(errorText(err)).toBe(
      [
        'web.yaml: 3 problems:',
        '  name: must be a DNS label: 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
        '  vcpus: must be greater than 0',
        '  memory_mib: is required',
      ].join('\n'),
    );
  });
  it('keeps a single problem on one line', () => {
    expect(errorText(new InvalidArgumentError('web.yaml: vcpus', 'must be greater than 0'))).toBe('web.yaml: vcpus: must be greater than 0');
  });
});

describe('watchForClosedStdout', () => {
  it('turns EPIPE into a quiet stop, and lets other write errors surface', () => {
    const stdout = new EventEmitter();
    watchForClosedStdout(stdout);
    expect(() => stdout.emit('error', Object.assign(new Error('no space'), { code: 'ENOSPC' }))).toThrow('no space');
    expect(stdoutClosed.signal.aborted).toBe(false);
    expect(() => stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).not.toThrow();
    expect(stdoutClosed.signal.aborted).toBe(true);
    // Writes after the pipe closed fail again; they are expected now.
    expect(() => stdout.emit('error', Object.assign(new Error('write after end'), { code: 'ERR_STREAM_DESTROYED' }))).not.toThrow();
  });
});

describe('-o formats', () => {
  const data = { id: 'w-1', spec: { vcpus: 0.3, labels: { 'app.kubernetes.io/name': 'web' } }, addresses: ['10.0.0.2'], note: 'yes', empty: '' };
  const render = (wide: boolean) => (wide ? 'ID  NAME  TENANT' : 'ID  NAME');

  it.each<{ format: OutputFormat; want: (out: string) => void }>([
    { format: 'table', want: (out) => expect(out).toBe('ID  NAME') },
    { format: 'wide', want: (out) => expect(out).toBe('ID  NAME  TENANT') },
    { format: 'json', want: (out) => expect(out).toBe(JSON.stringify(data, null, 2)) },
    // The same value as the JSON: a person or yq reads the same keys; strings that look like other types stay strings.
    { format: 'yaml', want: (out) => expect(parseYaml(out)).toEqual(data) },
  ])('$format', ({ format, want }) => {
    want(formatted(format, data, render));
  });

  it('are table, wide, json and yaml; table and wide are for people', () => {
    expect([...OUTPUT_FORMATS]).toEqual(['table', 'wide', 'json', 'yaml']);
    expect(OUTPUT_FORMATS.filter(forPeople)).toEqual(['table', 'wide']);
  });

  it('yaml carries what JSON would: dates as strings, undefined left out, nothing as null', () => {
    expect(parseYaml(formatted('yaml', { at: new Date(0), gone: undefined, n: 1 }, () => ''))).toEqual({ at: '1970-01-01T00:00:00.000Z', n: 1 });
    expect(formatted('yaml', undefined, () => '')).toBe('null');
    expect(formatted('json', undefined, () => '')).toBe('null');
    expect(parseYaml(formatted('yaml', ['1.0', 'true', 'no'], () => ''))).toEqual(['1.0', 'true', 'no']);
  });

  it('streams one JSON line, one YAML document or one line for a person per record', () => {
    const events = [{ sequence: '1', type: 'a' }, { sequence: '2', type: 'b' }];
    const as = (format: OutputFormat) => events.map((e) => `${streamed(format, e, () => `${e.sequence} ${e.type}`)}\n`).join('');
    expect(as('json')).toBe('{"sequence":"1","type":"a"}\n{"sequence":"2","type":"b"}\n');
    expect(parseAllDocuments(as('yaml')).map((d) => d.toJS() as unknown)).toEqual(events);
    expect(as('table')).toBe('1 a\n2 b\n');
    expect(as('wide')).toBe(as('table'));
  });
});

describe('cpus', () => {
  it.each([
    [3.619999999999966, '3.62'],
    [3.62, '3.62'],
    [0.5, '0.5'],
    [8, '8'],
    [0.333, '0.33'],
    [0.125, '0.13'],
    [0, '0'],
    [-0.001, '0'],
    [1024, '1024'],
  ])('%d vCPUs read %s: at most two decimals, no trailing zeros', (n, want) => {
    expect(cpus(n)).toBe(want);
  });
});
