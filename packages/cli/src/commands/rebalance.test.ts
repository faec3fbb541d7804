import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { errorText } from '../output.js';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { registerRebalanceCommand } from './rebalance.js';

const dir = mkdtempSync(join(tmpdir(), 'virtfleet-rebalance-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const HOSTS = file('hosts.yaml', ['- id: h', '  count: 3', '  vcpus: 8', '  memory_mib: 8192', '- id: idle', '  vcpus: 8', '  memory_mib: 8192'].join('\n'));
const WORKLOADS = file(
  'workloads.jsonl',
  [
    '# three hosts in use, two would do',
    '{"id": "a", "name": "web", "host": "h-1", "vcpus": 1, "memory_mib": 4096}',
    '{"id": "b", "name": "db", "host": "h-2", "vcpus": 1, "memory_mib": 2048}',
    '{"id": "c", "name": "cache", "host": "h-3", "vcpus": 1, "memory_mib": 2048}',
    '{"id": "s", "name": "batch", "host": "h-3", "vcpus": 1, "memory_mib": 1024, "state": "stopped"}',
  ].join('\n'),
);

/**
 * Runs `virtfleet <args>` in this process with main.ts's global options and
 * its exit code rule: a usage error (commander's) exits 2, a thrown error by
 * exitCodeFor. Returns what went to stdout and stderr.
 */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command('virtfleet')
    .addOption(new Option('--coordinator <host:port>').default('127.0.0.1:1'))
    .addOption(new Option('-o, --output <format>').choices(['table', 'json']).default('table'))
    .addOption(new Option('--timeout <seconds>').default(1))
    .exitOverride();
  registerRebalanceCommand(program);
  let stderr = '';
  const quiet = (c: Command) => {
    c.exitOverride().configureOutput({ writeErr: (s) => (stderr += s), writeOut: () => undefined });
    c.commands.forEach(quiet);
  };
  quiet(program);
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'virtfleet', ...args]);
    return { code: EXIT.ok, stdout, stderr };
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode === 0 ? EXIT.ok : EXIT.invalidInput, stdout, stderr };
    return { code: exitCodeFor(err), stdout, stderr: stderr + errorText(err) };
  } finally {
    spy.mockRestore();
  }
}

describe('virtfleet rebalance plan, offline', () => {
  it('prints the plan as JSON with snake_case keys', async () => {
    const r = await run(['-o', 'json', 'rebalance', 'plan', '--goal', 'consolidate', '--hosts', HOSTS, '--workloads', WORKLOADS]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as Record<string, unknown> & { moves: Record<string, unknown>[]; gain: Record<string, unknown> };
    expect(Object.keys(plan).sort()).toEqual(['gain', 'goal', 'hosts_lower_bound', 'hosts_used_after', 'hosts_used_before', 'moves', 'pinned', 'truncated']);
    expect(plan).toMatchObject({ goal: 'consolidate', hosts_used_before: 3, hosts_used_after: 2, hosts_lower_bound: 2 });
    expect(plan.moves).toHaveLength(1);
    expect(Object.keys(plan.moves[0]!).sort()).toEqual(['from', 'name', 'to', 'workload_id']);
    expect(Object.keys(plan.gain).sort()).toEqual(['cpu', 'freed_hosts', 'hosts_freed', 'memory']);
    expect(plan.pinned).toEqual([{ workload_id: 's', name: 'batch', host: 'h-3', reason: 'stopped: only running and paused workloads move' }]);
  });

  it('prints the moves and the summary as a table', async () => {
    const r = await run(['rebalance', 'plan', '--goal', 'consolidate', '--hosts', HOSTS, '--workloads', WORKLOADS]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^consolidate: 3 hosts in use → 2 \(1 freed: h-2\); at least 2 needed$/m);
    expect(r.stdout).toMatch(/^memory utilisation: max 50% → 75%, mean 38% → 56%, stddev 10\.2 → 18\.8 points$/m);
    expect(r.stdout).toMatch(/^#\s+WORKLOAD\s+NAME\s+FROM\s+TO$/m);
    expect(r.stdout).toMatch(/^1\s+b\s+db\s+h-2\s+h-1$/m);
    expect(r.stdout).toContain('1 move, one at a time in this order; nothing was changed');
    expect(r.stdout).toContain('1 workload stays: batch (s) on h-3: stopped');
  });

  it('plans balance too', async () => {
    const r = await run(['-o', 'json', 'rebalance', 'plan', '--goal', 'balance', '--hosts', HOSTS, '--workloads', WORKLOADS]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { goal: string; hosts_used_after: number; gain: { memory: { before: { stddev: number }; after: { stddev: number } } } };
    expect(plan.goal).toBe('balance');
    expect(plan.hosts_used_after).toBe(3);
    expect(plan.gain.memory.after.stddev).toBeLessThanOrEqual(plan.gain.memory.before.stddev);
  });

  it.each([
    { name: 'an unknown goal', args: ['--goal', 'shuffle', '--hosts', HOSTS, '--workloads', WORKLOADS], stderr: /argument 'shuffle' is invalid. Allowed choices are consolidate, balance/ },
    { name: 'no goal', args: ['--hosts', HOSTS, '--workloads', WORKLOADS], stderr: /required option '--goal <goal>' not specified/ },
    { name: '--hosts without --workloads', args: ['--goal', 'consolidate', '--hosts', HOSTS], stderr: /^--workloads: is required with --hosts/ },
    { name: '--workloads without --hosts', args: ['--goal', 'consolidate', '--workloads', WORKLOADS], stderr: /^--hosts: is required with --workloads/ },
    {
      name: 'a workload on a host the hosts file lacks',
      args: ['--goal', 'consolidate', '--hosts', HOSTS, '--workloads', file('bad-host.jsonl', '{"host": "h-1", "vcpus": 1, "memory_mib": 64}\n{"host": "h-9", "vcpus": 1, "memory_mib": 64}')],
      stderr: /bad-host\.jsonl:2: host: no host "h-9" in .*hosts\.yaml$/,
    },
    {
      name: 'a bad spec field',
      args: ['--goal', 'consolidate', '--hosts', HOSTS, '--workloads', file('bad-field.jsonl', '{"host": "h-1", "vcpus": -1, "memory_mib": 64}')],
      stderr: /bad-field\.jsonl:1: vcpus: /,
    },
    {
      name: 'malformed JSON',
      args: ['--goal', 'consolidate', '--hosts', HOSTS, '--workloads', file('bad-json.jsonl', '{"host": "h-1",')],
      stderr: /bad-json\.jsonl:1: malformed JSON/,
    },
    {
      name: 'a bad host entry',
      args: ['--goal', 'consolidate', '--hosts', file('bad-hosts.yaml', '- id: h1\n  vcpus: 0\n  memory_mib: 1024'), '--workloads', WORKLOADS],
      stderr: /bad-hosts\.yaml: \[0\]\.vcpus: must be greater than 0/,
    },
    { name: 'a file that does not exist', args: ['--goal', 'consolidate', '--hosts', HOSTS, '--workloads', join(dir, 'missing.jsonl')], stderr: /missing\.jsonl: cannot read file/ },
  ])('exits 2 on $name, saying what is wrong', async ({ args, stderr }) => {
    const r = await run(['rebalance', 'plan', ...args]);
    expect(r.code).toBe(EXIT.invalidInput);
    expect(r.stderr).toMatch(stderr);
    expect(r.stdout).toBe('');
  });
});
