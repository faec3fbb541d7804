import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@virtfleet/shared';
import { parseTrace, readTrace } from './trace.js';

const ok = '{"time": 0, "runtime": 10, "vcpus": 1, "memory_mib": 64}';

function errorOf(text: string): InvalidArgumentError {
  try {
    parseTrace(text, 'trace.jsonl');
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('the trace was accepted');
}

describe('parseTrace: errors name the file, the line and the field', () => {
  const cases: { name: string; text: string; message: string }[] = [
    { name: 'malformed JSON', text: [ok, '# comment', '', '{"time": 0, "runtime": 10,'].join('\n'), message: 'trace.jsonl:4: malformed JSON: ' },
    { name: 'a bad spec field', text: ['# header', ok, '', '', '', '', '{"time": 0, "runtime": 10, "vcpus": 1, "memory_mib": 2}'].join('\n'), message: 'trace.jsonl:7: memory_mib: must be at least 6' },
    { name: 'a nested spec field', text: '{"time": 0, "runtime": 1, "vcpus": 1, "memory_mib": 64, "security": {"isolation": "total"}}', message: 'trace.jsonl:1: security.isolation: must be one of shared, tenant, dedicated' },
    { name: 'missing time', text: '{"runtime": 10, "vcpus": 1, "memory_mib": 64}', message: 'trace.jsonl:1: time: is required' },
    { name: 'missing runtime', text: '{"time": 0, "vcpus": 1, "memory_mib": 64}', message: 'trace.jsonl:1: runtime: is required' },
    { name: 'negative time', text: '{"time": -1, "runtime": 10, "vcpus": 1, "memory_mib": 64}', message: 'trace.jsonl:1: time: must not be negative' },
    { name: 'zero runtime', text: '{"time": 0, "runtime": 0, "vcpus": 1, "memory_mib": 64}', message: 'trace.jsonl:1: runtime: must be at least 0.001' },
    { name: 'runtime as a string', text: '{"time": 0, "runtime": "10m", "vcpus": 1, "memory_mib": 64}', message: 'trace.jsonl:1: runtime: must be a number of seconds' },
    { name: 'missing vcpus', text: '{"time": 0, "runtime": 10, "memory_mib": 64}', message: 'trace.jsonl:1: vcpus: is required' },
    { name: 'a fractional vcpu count for a vm', text: '{"time": 0, "runtime": 10, "kind": "vm", "vcpus": 0.5, "memory_mib": 64}', message: 'trace.jsonl:1: vcpus: must be a whole number for a vm' },
    { name: 'an unknown field', text: '{"time": 0, "runtime": 10, "vcpus": 1, "memory_mib": 64, "gpus": 1}', message: 'trace.jsonl:1: ' },
    { name: 'a line that is not an object', text: '[0, 10, 1, 64]', message: 'trace.jsonl:1: must be a JSON object' },
  ];
  it.each(cases)('$name', ({ text, message }) => {
    const err = errorOf(text);
    expect(err.message.startsWith(message), `${err.message} should start with ${message}`).toBe(true);
    expect(err.field).toMatch(/^trace\.jsonl:\d+$/);
  });

  it('names an unknown field', () => {
    expect(errorOf('{"time": 0, "runtime": 10, "vcpus": 1, "memory_mib": 64, "gpus": 1}').reason).toContain('gpus');
  });
});

describe('parseTrace: defaults, comments and order', () => {
  it('skips comments and blank lines and fills in defaults, numbering by file line', () => {
    const [a, b] = parseTrace(['# time runtime ...', '', '  ', ok, '# more', '{"time": 5, "runtime": 20, "name": "db", "kind": "vm", "vcpus": 2, "memory_mib": 128, "expected_runtime_seconds": 60, "priority": 90, "tenant": "acme"}'].join('\n'), 't');
    expect(a).toMatchObject({ time: 0, runtime: 10, line: 4, spec: { name: 'job-4', kind: 'container', image: 'sim:latest', expected_runtime_seconds: 10, priority: 50, tenant: 'default', disk_gib: 0 } });
    expect(a?.spec.security).toEqual({ isolation: 'shared', min_trust_level: 0, required_features: [] });
    expect(b).toMatchObject({ time: 5, runtime: 20, line: 6, spec: { name: 'db', kind: 'vm', image: '', expected_runtime_seconds: 60, priority: 90, tenant: 'acme' } });
  });

  it('accepts CRLF line ends', () => {
    expect(parseTrace(`${ok}\r\n${ok}\r\n`, 't').map((a) => a.line)).toEqual([1, 2]);
  });

  it('sorts by time, keeping file order for ties', () => {
    const lines = [5, 0, 5, 0].map((t) => `{"time": ${t}, "runtime": 1, "vcpus": 1, "memory_mib": 64}`);
    expect(parseTrace(lines.join('\n'), 't').map((a) => a.line)).toEqual([2, 4, 1, 3]);
  });

  it('returns nothing for a file of comments', () => {
    expect(parseTrace('# nothing\n\n', 't')).toEqual([]);
  });

  it('reports an unreadable file by its path', () => {
    expect(() => readTrace('/nonexistent/trace.jsonl')).toThrow(/^\/nonexistent\/trace\.jsonl: cannot read file/);
  });
});
