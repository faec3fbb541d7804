import { describe, expect, it } from 'vitest';
import { HostCommandBatcher, type CommandOutcome } from './host-command-batcher.js';

const turn = () => new Promise((r) => setImmediate(r));

/** A sender that records each call's commands and answers when the test says. */
function recorder() {
  const calls: { commands: string[]; answer: (outcomes?: CommandOutcome<string>[]) => void; fail: (err: unknown) => void }[] = [];
  const send = (commands: string[]) =>
    new Promise<CommandOutcome<string>[]>((resolve, reject) => {
      calls.push({ commands, answer: (outcomes) => resolve(outcomes ?? commands.map((c) => ({ ok: true, value: `done ${c}` }))), fail: reject });
    });
  return { calls, send };
}

describe('HostCommandBatcher', () => {
  it('sends the commands of one turn in one call, and those that waited for a slot together in the next', async () => {
    const batcher = new HostCommandBatcher<string, string>(3);
    const { calls, send } = recorder();
    const results = ['a', 'b', 'c', 'd', 'e'].map((c) => batcher.run('h1', c, send));
    await turn();
    expect(calls.map((c) => c.commands)).toEqual([['a', 'b', 'c']]);
    expect(batcher.queued('h1')).toBe(2);
    calls[0]!.answer();
    await turn();
    expect(calls.map((c) => c.commands)).toEqual([['a', 'b', 'c'], ['d', 'e']]);
    calls[1]!.answer();
    expect(await Promise.all(results)).toEqual(['done a', 'done b', 'done c', 'done d', 'done e']);
  });

  it('keeps hosts apart', async () => {
    const batcher = new HostCommandBatcher<string, string>(16);
    const { calls, send } = recorder();
    const results = [batcher.run('h1', 'a', send), batcher.run('h2', 'b', send), batcher.run('h1', 'c', send)];
    await turn();
    expect(calls.map((c) => c.commands)).toEqual([['a', 'c'], ['b']]);
    for (const c of calls) c.answer();
    expect(await Promise.all(results)).toEqual(['done a', 'done b', 'done c']);
  });

  it('gives an alone command a call of its own, in order', async () => {
    const batcher = new HostCommandBatcher<string, string>(16, (c) => c.startsWith('stop'));
    const { calls, send } = recorder();
    const results = ['a', 'b', 'stop x', 'c', 'stop y'].map((c) => batcher.run('h1', c, send));
    await turn();
    expect(calls.map((c) => c.commands)).toEqual([['a', 'b'], ['stop x'], ['c'], ['stop y']]);
    for (const c of calls) c.answer();
    await Promise.all(results);
  });

  it('settles each command by its own outcome, and all of a call that failed as a whole', async () => {
    const batcher = new HostCommandBatcher<string, string>(2);
    const { calls, send } = recorder();
    const first = [batcher.run('h1', 'a', send), batcher.run('h1', 'b', send)];
    await turn();
    calls[0]!.answer([{ ok: true, value: 'A' }, { ok: false, error: new Error('b refused') }]);
    await expect(first[0]).resolves.toBe('A');
    await expect(first[1]).rejects.toThrow('b refused');
    const second = [batcher.run('h1', 'c', send), batcher.run('h1', 'd', send)];
    await turn();
    calls[1]!.fail(new Error('agent unreachable'));
    await expect(second[0]).rejects.toThrow('agent unreachable');
    await expect(second[1]).rejects.toThrow('agent unreachable');
    // A reply short of results fails the commands it leaves out.
    const third = [batcher.run('h1', 'e', send), batcher.run('h1', 'f', send)];
    await turn();
    calls[2]!.answer([{ ok: true, value: 'E' }]);
    await expect(third[0]).resolves.toBe('E');
    await expect(third[1]).rejects.toThrow(/1 results for 2 commands/);
    expect(batcher.queued('h1')).toBe(0);
  });
});
