import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tailFile } from './file-tail.js';

const dir = mkdtempSync(join(tmpdir(), 'vf-tail-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (content: string) => {
  const path = join(dir, `f${n++}.log`);
  writeFileSync(path, content);
  return path;
};
const read = async (path: string, options: Parameters<typeof tailFile>[1], signal = new AbortController().signal) => {
  let text = '';
  for await (const chunk of tailFile(path, options, signal)) text += chunk.toString();
  return text;
};

describe('tailFile', () => {
  it.each([
    { name: 'the whole file', content: 'a\nb\nc\n', tailLines: undefined, want: 'a\nb\nc\n' },
    { name: 'its last lines', content: 'a\nb\nc\n', tailLines: 2, want: 'b\nc\n' },
    { name: 'nothing of an empty file', content: '', tailLines: 5, want: '' },
  ])('reads $name without following', async ({ content, tailLines, want }) => {
    expect(await read(fresh(content), { follow: false, ...(tailLines !== undefined ? { tailLines } : {}) })).toBe(want);
  });

  it('ends at once for a missing file', async () => {
    expect(await read(join(dir, 'absent.log'), { follow: true })).toBe('');
  });

  it('follows appends and a rotation, and ends when the file is removed', async () => {
    const path = fresh('one\n');
    const seen: string[] = [];
    const done = (async () => {
      for await (const chunk of tailFile(path, { follow: true, pollMs: 20 }, new AbortController().signal)) seen.push(chunk.toString());
    })();
    await new Promise((r) => setTimeout(r, 80));
    appendFileSync(path, 'two\n');
    await new Promise((r) => setTimeout(r, 80));
    renameSync(path, `${path}.0`);
    writeFileSync(path, 'three\n');
    await new Promise((r) => setTimeout(r, 80));
    rmSync(path);
    await done;
    expect(seen.join('')).toBe('one\ntwo\nthree\n');
  });

  it('stops following when aborted', async () => {
    const abort = new AbortController();
    const reading = read(fresh('x\n'), { follow: true, pollMs: 20 }, abort.signal);
    setTimeout(() => abort.abort(), 60);
    expect(await reading).toBe('x\n');
  });
});
