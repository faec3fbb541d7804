import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError, type Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { errorText } from './output.js';
import { buildProgram } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'virtfleet-program-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sample = (file: string) => fileURLToPath(new URL(`../../../deploy/examples/simulation/${file}`, import.meta.url));
const TRACE = sample('trace.jsonl');
const HOSTS = sample('hosts.yaml');
const WORKLOADS = join(dir, 'workloads.jsonl');
writeFileSync(WORKLOADS, '{"id": "a", "name": "web", "host": "core-a", "vcpus": 0.5, "memory_mib": 1024}\n{"id": "b", "name": "db", "host": "core-b", "vcpus": 0.25, "memory_mib": 1024}\n');

/** Runs `virtfleet <args>` in this process, as main.ts does, with what went to stdout and stderr. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = buildProgram();
  let stderr = '';
  const quiet = (c: Command) => {
    c.configureOutput({ writeErr: (s) => (stderr += s), writeOut: () => undefined });
    c.commands.forEach(quiet);
  };
  quiet(program);
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const exitCode = process.exitCode;
  try {
    await program.parseAsync(['node', 'virtfleet', ...args]);
    return { code: Number(process.exitCode ?? EXIT.ok), stdout, stderr };
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode === 0 ? EXIT.ok : EXIT.invalidInput, stdout, stderr };
    return { code: exitCodeFor(err), stdout, stderr: stderr + errorText(err) };
  } finally {
    spy.mockRestore();
    process.exitCode = exitCode;
  }
}

/** Every object key anywhere in `value`, with its path. */
function keysOf(value: unknown, path = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => keysOf(v, `${path}[${i}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => [`${path}.${k}`, ...keysOf(v, `${path}.${k}`)]);
}

describe('-o', () => {
  it('refuses a format it does not know, naming the choices', async () => {
    const r = await run(['-o', 'xml', 'simulate', '--trace', TRACE, '--hosts', HOSTS]);
    expect(r.code).toBe(EXIT.invalidInput);
    expect(r.stderr).toContain('table, wide, json, yaml');
  });

  it('prints the same data as json and as yaml, and the table as wide where a command has no more columns', async () => {
    const args = ['simulate', '--trace', TRACE, '--hosts', HOSTS, '--queue', 'fcfs,sjf'];
    const json = await run(['-o', 'json', ...args]);
    const yaml = await run(['-o', 'yaml', ...args]);
    const table = await run(args);
    const wide = await run(['-o', 'wide', ...args]);
    expect(json.code, json.stderr).toBe(0);
    expect(parseYaml(yaml.stdout)).toEqual(JSON.parse(json.stdout));
    expect(table.stdout).toMatch(/^METRIC\s+FCFS\s+SJF$/m);
    expect(wide.stdout).toBe(table.stdout);
  });

  it('takes yaml after the command as well', async () => {
    const r = await run(['rebalance', 'plan', '--goal', 'consolidate', '--hosts', HOSTS, '--workloads', WORKLOADS, '-o', 'yaml']);
    expect(r.code, r.stderr).toBe(0);
    expect(parseYaml(r.stdout)).toMatchObject({ goal: 'consolidate', hosts_used_before: 2 });
  });
});

describe('JSON output keys', () => {
  // Every command that needs no coordinator; those that do print the API's messages, whose fields are snake_case by proto.
  it.each([
    { name: 'simulate', args: ['simulate', '--trace', TRACE, '--hosts', HOSTS, '--queue', 'fcfs,sjf,priority'] },
    { name: 'rebalance plan (offline)', args: ['rebalance', 'plan', '--goal', 'balance', '--hosts', HOSTS, '--workloads', WORKLOADS] },
    { name: 'nats issue', args: ['nats', 'issue', '--dir', join(dir, 'nats'), '--role', 'monitor', '--name', 'm1'] },
    { name: 'nats ls', args: ['nats', 'ls', '--dir', join(dir, 'nats')] },
    { name: 'pki init', args: ['pki', 'init', '--dir', join(dir, 'pki')] },
    { name: 'pki issue', args: ['pki', 'issue', '--dir', join(dir, 'pki'), '--role', 'operator', '--name', 'me'] },
    { name: 'pki show', args: ['pki', 'show', join(dir, 'pki', 'operator-me.crt')] },
  ])('are snake_case: $name', async ({ args }) => {
    const r = await run(['-o', 'json', ...args]);
    expect(r.code, r.stderr).toBe(0);
    const keys = keysOf(JSON.parse(r.stdout));
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => !/^[a-z0-9_]+$/.test(k.slice(k.lastIndexOf('.') + 1))), 'keys that are not snake_case').toEqual([]);
  });
});
