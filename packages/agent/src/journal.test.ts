import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal, readLines } from './journal.js';

describe('Journal', () => {
  const dirs: string[] = [];
  const file = () => {
    const dir = mkdtempSync(join(tmpdir(), 'journal-'));
    dirs.push(dir);
    return join(dir, 'j.jsonl');
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const journalOf = (path: string, state: string[], compactAbove = 1000) => new Journal(path, { snapshot: () => [...state], compactAbove: () => compactAbove });

  it('writes a burst of appends under a few syncs, every line durable when its append resolves', async () => {
    const path = file();
    const journal = journalOf(path, []);
    await Promise.all(Array.from({ length: 200 }, (_, i) => journal.append(`line ${i}`)));
    expect(readLines(path)).toEqual(Array.from({ length: 200 }, (_, i) => `line ${i}`));
    expect(journal.syncs).toBeLessThanOrEqual(2);
    await journal.close();
  });

  it('cuts off a torn last line before appending, so the next line stays whole', async () => {
    const path = file();
    appendFileSync(path, 'whole\n{"torn');
    const journal = journalOf(path, []);
    await journal.append('next');
    expect(readFileSync(path, 'utf8')).toBe('whole\nnext\n');
    await journal.close();
  });

  it('replaces the history with the snapshot once it grows past the bound', async () => {
    const path = file();
    const state: string[] = [];
    const journal = journalOf(path, state, 4);
    for (let i = 0; i < 6; i++) {
      state.splice(0, state.length, `state ${i}`);
      await journal.append(`set ${i}`);
    }
    // Lines 0-3 fit; the fifth append compacts to the state then; the sixth appends after it.
    expect(readLines(path)).toEqual(['state 4', 'set 5']);
    expect(journal.length).toBe(2);
    await journal.close();
  });

  it('refuses appends after close', async () => {
    const journal = journalOf(file(), []);
    await journal.close();
    await expect(journal.append('late')).rejects.toThrow(/closed/);
  });
});
