import { describe, expect, it } from 'vitest';
import { ProgressLine } from '../progress.js';
import { byteProgress, counted } from './images.js';

async function* chunks(sizes: number[]): AsyncIterable<Buffer> {
  for (const n of sizes) yield Buffer.alloc(n);
}

describe('image import progress', () => {
  it('counts the bytes going by without changing them', async () => {
    const totals: number[] = [];
    const seen: number[] = [];
    for await (const c of counted(chunks([3, 5, 2]), (t) => totals.push(t))) seen.push(c.length);
    expect(seen).toEqual([3, 5, 2]);
    expect(totals).toEqual([3, 8, 10]);
  });

  it('on a terminal, redraws a bar each time the whole percentage moves', async () => {
    const writes: string[] = [];
    const show = byteProgress(new ProgressLine((t) => void writes.push(t)), 'importing disk-1', 4 * 2 ** 20);
    for await (const _ of counted(chunks([2 ** 19, 1, 2 ** 19, 2 ** 20, 2 ** 21]), show)) void _;
    expect(writes.map((w) => w.replace('\r\x1b[K', ''))).toEqual([
      '[###---------------------] 12% importing disk-1: 0.5Mi of 4.0Mi',
      '[######------------------] 25% importing disk-1: 1.0Mi of 4.0Mi',
      '[############------------] 50% importing disk-1: 2.0Mi of 4.0Mi',
      '[########################] 100% importing disk-1: 4.0Mi of 4.0Mi',
    ]);
  });
});
