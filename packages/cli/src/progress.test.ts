import { describe, expect, it } from 'vitest';
import { bar, elapsed, progressFor, ProgressLine, spinner, whileRunning } from './progress.js';

/** A stream that records what is written, as a terminal (`isTTY: true`) or a pipe. */
function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, writes, write: (t: string) => writes.push(t) };
}

describe('bar', () => {
  it.each([
    [0, '[--------] 0%'],
    [0.5, '[####----] 50%'],
    [0.999, '[########] 99%'],
    [1, '[########] 100%'],
    [1.7, '[########] 100%'],
    [-1, '[--------] 0%'],
    [Number.NaN, '[--------] 0%'],
  ])('%d is %s', (f, want) => expect(bar(f, 8)).toBe(want));
});

describe('elapsed and spinner', () => {
  it.each([
    [0, '0s'],
    [59_999, '59s'],
    [60_000, '1m00s'],
    [125_000, '2m05s'],
  ])('%i ms is %s', (ms, want) => expect(elapsed(0, ms)).toBe(want));
  it('turns', () => expect([0, 1, 2, 3, 4].map(spinner).join('')).toBe('|/-\\|'));
});

describe('ProgressLine on a terminal', () => {
  it('redraws the last line in place, prints whole lines above it, and ends or removes it', () => {
    const tty = fakeStream(true);
    const p = progressFor(tty)!;
    p.draw('[--] 0%');
    p.draw('[#-] 50%', ['moved a']);
    p.finish();
    p.draw('[##] 100%');
    p.clear();
    expect(tty.writes).toEqual(['[--] 0%', '\r\x1b[Kmoved a\n[#-] 50%', '\n', '[##] 100%', '\r\x1b[K']);
  });

  it('is not made for a pipe, nor for json or yaml on a terminal', () => {
    expect(progressFor(fakeStream(false))).toBeUndefined();
    expect(progressFor({ write: () => true })).toBeUndefined();
    expect(progressFor(fakeStream(true), false)).toBeUndefined();
    expect(progressFor(fakeStream(true))).toBeInstanceOf(ProgressLine);
  });
});

describe('whileRunning', () => {
  it('into a pipe, only waits for the work: nothing is written', async () => {
    const pipe = fakeStream(false);
    await expect(whileRunning(progressFor(pipe), () => 'never', Promise.resolve(42))).resolves.toBe(42);
    expect(pipe.writes).toEqual([]);
  });

  it('on a terminal, turns a spinner until the work ends, then removes the line, also when it fails', async () => {
    const tty = fakeStream(true);
    const work = new Promise((resolve) => setTimeout(() => resolve('done'), 60));
    await expect(whileRunning(progressFor(tty), (f) => `${spinner(f)} backing up`, work, 10)).resolves.toBe('done');
    expect(tty.writes[0]).toBe('| backing up');
    expect(tty.writes.length).toBeGreaterThan(2);
    expect(tty.writes.slice(1, -1).every((w) => w.startsWith('\r\x1b[K') && /^[|/\\-] backing up$/.test(w.slice('\r\x1b[K'.length)))).toBe(true);
    expect(tty.writes.at(-1)).toBe('\r\x1b[K');

    const failing = fakeStream(true);
    await expect(whileRunning(progressFor(failing), () => 'x', Promise.reject(new Error('gone')), 10)).rejects.toThrow('gone');
    expect(failing.writes).toEqual(['x', '\r\x1b[K']);
  });
});
