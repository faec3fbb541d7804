import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { pb } from '@virtfleet/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { STATE_CHUNK_BYTES, StateReceiver, stateChunks } from './state-stream.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'vf-state-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const header: pb.WorkloadStateChunk__Output = { header: { command_id: 'c1', workload_id: 'w1', spec: null }, part: 'header' } as pb.WorkloadStateChunk__Output;
const chunk = (c: pb.WorkloadStateChunk) => c as pb.WorkloadStateChunk__Output;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function collect(files: Record<string, string>): Promise<pb.WorkloadStateChunk__Output[]> {
  const out: pb.WorkloadStateChunk__Output[] = [];
  for await (const c of stateChunks(files)) out.push(chunk(c));
  return out;
}

describe('state stream', () => {
  it('carries files whole, in pieces of at most a MiB, each checked by size and SHA-256', async () => {
    const src = tempDir();
    const big = randomBytes(STATE_CHUNK_BYTES * 2 + 17);
    const small = Buffer.from('hello');
    writeFileSync(join(src, 'big'), big);
    writeFileSync(join(src, 'small'), small);
    writeFileSync(join(src, 'empty'), '');
    const chunks = await collect({ 'disk:root': join(src, 'big'), 'disk:data': join(src, 'small'), image: join(src, 'empty') });
    expect(chunks.filter((c) => c.data).every((c) => c.data!.length <= STATE_CHUNK_BYTES)).toBe(true);
    const receiver = new StateReceiver(tempDir(), 2 ** 30);
    for (const c of [header, ...chunks]) await receiver.take(c);
    const { header: got, files } = await receiver.finish();
    expect(got.workload_id).toBe('w1');
    expect(Object.keys(files)).toEqual(['disk:root', 'disk:data', 'image']);
    expect(sha(readFileSync(files['disk:root']!))).toBe(sha(big));
    expect(readFileSync(files['disk:data']!, 'utf8')).toBe('hello');
    expect(readFileSync(files.image!, 'utf8')).toBe('');
  });

  const file = (role: string, size: number) => chunk({ file: { role, size_bytes: size } });
  const data = (s: string) => chunk({ data: Buffer.from(s) });
  const end = (s: string) => chunk({ file_end: { sha256: sha(Buffer.from(s)) } });

  it.each([
    ['no header first', [file('image', 1)], /header: message 1: the first message must name the workload/],
    ['a second header', [header, header], /header: message 2: only the first message names the workload/],
    ['a role that is no role', [header, file('../etc/passwd', 1)], /file\.role: message 2: must be disk:NAME, memory or image/],
    ['a repeated role', [header, file('image', 1), data('x'), end('x'), file('image', 1)], /file\.role: message 5: image was sent already/],
    ['a negative size', [header, file('image', -1)], /file\.size_bytes: message 2: must be a whole number/],
    ['more than the limit', [header, file('disk:root', 2 ** 31)], /would exceed/],
    ['bytes before a file', [header, data('x')], /data: message 2: bytes before any file/],
    ['more bytes than announced', [header, file('image', 1), data('xy')], /data: message 3: image is longer than its 1 bytes/],
    ['a file begun before the last ended', [header, file('image', 1), file('disk:root', 1)], /file: message 3: image has not ended/],
    ['fewer bytes than announced', [header, file('image', 3), data('xy'), end('xy')], /file_end: message 4: image has 2 of its 3 bytes/],
    ['a digest that does not match', [header, file('image', 2), data('xy'), end('yx')], /file_end\.sha256: message 4: image arrived with SHA-256/],
    ['an end without a file', [header, end('x')], /file_end: message 2: no file has begun/],
    ['an empty message', [header, chunk({})], /part: message 2: empty/],
  ])('refuses %s, naming the field', async (_name, chunks, message) => {
    const receiver = new StateReceiver(tempDir(), 2 ** 30);
    await expect((async () => {
      for (const c of chunks) await receiver.take(c);
      await receiver.finish();
    })()).rejects.toThrow(message);
    receiver.abandon();
  });

  it('refuses an import that ends mid-file or names nothing', async () => {
    const cut = new StateReceiver(tempDir(), 2 ** 30);
    for (const c of [header, file('image', 2), data('x')]) await cut.take(c);
    await expect(cut.finish()).rejects.toThrow(/file_end: image did not end/);
    await expect(new StateReceiver(tempDir(), 1).finish()).rejects.toThrow(/header: the import named no workload/);
  });
});
