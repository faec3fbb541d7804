import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { demuxDockerLog, lastLines, parseLogOptions, type LogChunk } from './logs.js';

const frame = (stream: number, text: string) => {
  const data = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
};
async function* pieces(whole: Buffer, size: number) {
  for (let i = 0; i < whole.length; i += size) yield whole.subarray(i, i + size);
}
const collect = async (source: AsyncIterable<LogChunk>) => {
  const out: [string, string][] = [];
  for await (const c of source) out.push([c.stream, c.data.toString()]);
  return out;
};

describe('demuxDockerLog', () => {
  const whole = Buffer.concat([frame(1, 'hello\n'), frame(2, 'oops\n'), frame(0, 'stdin'), frame(1, 'x'.repeat(300))]);
  it.each([1, 3, 8, 9, 1000])('splits frames that arrive in pieces of %i bytes', async (size) => {
    expect(await collect(demuxDockerLog(pieces(whole, size)))).toEqual([
      ['stdout', 'hello\n'],
      ['stderr', 'oops\n'],
      ['stdout', 'x'.repeat(300)],
    ]);
  });
  it('drops a frame cut short at the end', async () => {
    expect(await collect(demuxDockerLog(pieces(Buffer.concat([frame(1, 'a'), frame(1, 'bcdef').subarray(0, 10)]), 4)))).toEqual([['stdout', 'a']]);
  });
});

describe('lastLines', () => {
  it.each([
    { text: 'a\nb\nc\n', n: 2, want: 'b\nc\n' },
    { text: 'a\nb\nc', n: 2, want: 'b\nc' },
    { text: 'a\nb\nc\n', n: 5, want: 'a\nb\nc\n' },
    { text: 'a\nb\nc\n', n: 0, want: '' },
    { text: '', n: 3, want: '' },
    { text: 'one line', n: 1, want: 'one line' },
  ])('$n of $text', ({ text, n, want }) => {
    expect(lastLines(Buffer.from(text), n).toString()).toBe(want);
  });
});

describe('parseLogOptions', () => {
  it('reads follow, tail and since', () => {
    expect(parseLogOptions({ follow: true, tail_lines: 10, since: '2026-01-02T03:04:05Z' })).toEqual({ follow: true, tailLines: 10, sinceMs: Date.parse('2026-01-02T03:04:05Z') });
    expect(parseLogOptions(null)).toEqual({ follow: false });
  });
  it.each([
    { options: { follow: false, tail_lines: -1, since: '' }, field: 'options.tail_lines' },
    { options: { follow: false, tail_lines: 2_000_000, since: '' }, field: 'options.tail_lines' },
    { options: { follow: false, since: 'yesterday' }, field: 'options.since' },
  ])('refuses $options naming $field', ({ options, field }) => {
    expect(() => parseLogOptions(options)).toThrow(InvalidArgumentError);
    expect(() => parseLogOptions(options)).toThrow(expect.objectContaining({ field }));
  });
});
