import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@virtfleet/shared';
import { parseHosts } from '../simulator/hosts-file.js';
import { offlineInput, parseWorkloads } from './offline-input.js';

const HOSTS = new Set(['h1', 'h2']);
const parse = (text: string) => parseWorkloads(text, 'w.jsonl', HOSTS, 'hosts.yaml');

describe('parseWorkloads', () => {
  it('reads spec fields, host, id and state, with defaults, skipping blank lines and comments', () => {
    const got = parse(['# fleet', '{"host": "h1", "vcpus": 1, "memory_mib": 512}', '', '{"id": "db-1", "host": "h2", "state": "stopped", "kind": "vm", "vcpus": 2, "memory_mib": 2048}'].join('\n'));
    expect(got.map((w) => ({ id: w.id, host: w.host, state: w.state, name: w.spec.name, kind: w.spec.kind, image: w.spec.image, line: w.line }))).toEqual([
      { id: 'w-2', host: 'h1', state: 'running', name: 'workload-2', kind: 'container', image: 'sim:latest', line: 2 },
      { id: 'db-1', host: 'h2', state: 'stopped', name: 'workload-4', kind: 'vm', image: '', line: 4 },
    ]);
  });

  it.each([
    { name: 'malformed JSON', line: '{"host": "h1",', want: /^w\.jsonl:1: malformed JSON: / },
    { name: 'not an object', line: '[1, 2]', want: /^w\.jsonl:1: must be a JSON object, one workload per line$/ },
    { name: 'no host', line: '{"vcpus": 1, "memory_mib": 64}', want: /^w\.jsonl:1: host: is required/ },
    { name: 'an unknown host', line: '{"host": "h9", "vcpus": 1, "memory_mib": 64}', want: /^w\.jsonl:1: host: no host "h9" in hosts\.yaml$/ },
    { name: 'a host that is no string', line: '{"host": 3, "vcpus": 1, "memory_mib": 64}', want: /^w\.jsonl:1: host: must be a host id$/ },
    { name: 'a bad id', line: '{"id": "Bad Id", "host": "h1", "vcpus": 1, "memory_mib": 64}', want: /^w\.jsonl:1: id: must be 1-80 characters/ },
    { name: 'a bad state', line: '{"state": "pending", "host": "h1", "vcpus": 1, "memory_mib": 64}', want: /^w\.jsonl:1: state: must be one of running, paused, stopped$/ },
    { name: 'no memory', line: '{"host": "h1", "vcpus": 1}', want: /^w\.jsonl:1: memory_mib: is required$/ },
    { name: 'a bad spec field', line: '{"host": "h1", "vcpus": 1, "memory_mib": 2}', want: /^w\.jsonl:1: memory_mib: must be at least 6/ },
    { name: 'an unknown field', line: '{"host": "h1", "vcpus": 1, "memory_mib": 64, "colour": "red"}', want: /^w\.jsonl:1: .*colour/ },
  ])('names the file, line and field: $name', ({ line, want }) => {
    expect(() => parse(line)).toThrow(InvalidArgumentError);
    expect(() => parse(line)).toThrow(want);
  });

  it('refuses an id given twice, naming both lines', () => {
    expect(() => parse(['{"id": "a", "host": "h1", "vcpus": 1, "memory_mib": 64}', '{"id": "a", "host": "h2", "vcpus": 1, "memory_mib": 64}'].join('\n'))).toThrow(
      /^w\.jsonl:2: id: a is already the id of line 1$/,
    );
  });
});

describe('offlineInput', () => {
  it('books every workload on its host and pins the ones that must stay', () => {
    const hosts = parseHosts([{ id: 'h1', vcpus: 8, memory_mib: 8192 }, { id: 'h2', vcpus: 8, memory_mib: 8192 }], 'hosts.yaml');
    const workloads = parse(
      [
        '{"id": "a", "host": "h1", "vcpus": 1, "memory_mib": 1024}',
        '{"id": "b", "host": "h1", "vcpus": 1, "memory_mib": 1024, "state": "stopped"}',
        '{"id": "c", "host": "h2", "vcpus": 1, "memory_mib": 1024, "restart_policy": "never"}',
      ].join('\n'),
    );
    const input = offlineInput(hosts, workloads);
    expect(input.hosts.map((h) => [h.id, h.workloadCount, h.allocated.memoryMiB])).toEqual([
      ['h1', 2, 2048],
      ['h2', 1, 1024],
    ]);
    expect(input.workloads.map((w) => [w.id, w.hostId, w.pinned])).toEqual([
      ['a', 'h1', undefined],
      ['b', 'h1', 'stopped: only running and paused workloads move'],
      ['c', 'h2', 'restart_policy never'],
    ]);
  });
});
