import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FailedPreconditionError } from '@virtfleet/shared';
import { CommandLedger } from './command-ledger.js';

describe('CommandLedger', () => {
  const dirs: string[] = [];
  const file = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    return join(dir, 'commands.jsonl');
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('runs a command id once and returns the recorded result', async () => {
    const ledger = new CommandLedger(file());
    let runs = 0;
    const exec = () => Promise.resolve({ n: ++runs });
    expect(await ledger.run('c1', 'create', { a: 1 }, exec)).toEqual({ n: 1 });
    expect(await ledger.run('c1', 'create', { a: 1 }, exec)).toEqual({ n: 1 });
    expect(runs).toBe(1);
  });

  it('joins a command that is still running', async () => {
    const ledger = new CommandLedger(file());
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const exec = async () => {
      runs++;
      await gate;
      return runs;
    };
    const a = ledger.run('c1', 'stop', {}, exec);
    const b = ledger.run('c1', 'stop', {}, exec);
    release();
    expect(await Promise.all([a, b])).toEqual([1, 1]);
    expect(runs).toBe(1);
  });

  it('refuses a command id reused for a different request', async () => {
    const ledger = new CommandLedger(file());
    await ledger.run('c1', 'create', { a: 1 }, () => Promise.resolve(1));
    await expect(ledger.run('c1', 'create', { a: 2 }, () => Promise.resolve(2))).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(ledger.run('c1', 'delete', { a: 1 }, () => Promise.resolve(2))).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it('does not record failures, so a retry runs again', async () => {
    const ledger = new CommandLedger(file());
    await expect(ledger.run('c1', 'start', {}, () => Promise.reject(new Error('backend down')))).rejects.toThrow('backend down');
    expect(await ledger.run('c1', 'start', {}, () => Promise.resolve('ok'))).toBe('ok');
  });

  it('survives a restart, and a torn last line from a crash', async () => {
    const path = file();
    const first = new CommandLedger(path);
    await first.run('c1', 'create', {}, () => Promise.resolve('created'));
    appendFileSync(path, '{"commandId":"c2","meth');
    const second = new CommandLedger(path);
    let runs = 0;
    expect(await second.run('c1', 'create', {}, () => Promise.resolve(`again ${++runs}`))).toBe('created');
    expect(await second.run('c2', 'create', {}, () => Promise.resolve(`c2 ${++runs}`))).toBe('c2 1');
    expect(runs).toBe(1);
  });

  it('compacts to the newest entries once the file doubles', async () => {
    const path = file();
    const ledger = new CommandLedger(path, 3);
    for (let i = 0; i < 7; i++) await ledger.run(`c${i}`, 'start', {}, () => Promise.resolve(i));
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(3);
    expect(ledger.size).toBe(3);
    const reloaded = new CommandLedger(path, 3);
    expect(await reloaded.run('c6', 'start', {}, () => Promise.resolve(-1))).toBe(6);
    expect(await reloaded.run('c0', 'start', {}, () => Promise.resolve(-1))).toBe(-1);
  });

  it('ignores garbage lines', async () => {
    const path = file();
    writeFileSync(path, 'not json\n{"x":1}\n');
    const ledger = new CommandLedger(path);
    expect(await ledger.run('c1', 'start', {}, () => Promise.resolve(1))).toBe(1);
  });
});
