import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlreadyExistsError, createLogger, DataLossError, FailedPreconditionError, InvalidArgumentError, NotFoundError, type pb } from '@virtfleet/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { newBackupId, type BackupManifest, type BackupMeta } from './backup-repository.js';
import { BACKUP_CHUNK_BYTES, DirectoryBackupRepository } from './directory-backup-repository.js';

const MiB = 1024 * 1024;
const CHUNK = BACKUP_CHUNK_BYTES;
const log = createLogger('backup-repository-test', 'silent');

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A repository in a fresh directory `<parent>/repo`, so that a test can see nothing was written beside it. */
function newRepo(): { repo: DirectoryBackupRepository; dir: string; parent: string } {
  const parent = mkdtempSync(join(tmpdir(), 'vf-backups-'));
  dirs.push(parent);
  const dir = join(parent, 'repo');
  return { repo: new DirectoryBackupRepository(dir, log), dir, parent };
}

interface SourceFile {
  role: string;
  bytes: Buffer;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const msg = (c: pb.WorkloadStateChunk) => c as pb.WorkloadStateChunk__Output;
const file = (role: string, size: number) => msg({ file: { role, size_bytes: size } });
const data = (b: Buffer | string) => msg({ data: Buffer.from(b) });
const end = (b: Buffer | string) => msg({ file_end: { sha256: sha(Buffer.from(b)) } });

/** The messages an agent sends for these files: file, data of `pieceBytes` at most, file_end. */
function messagesOf(files: SourceFile[], pieceBytes = MiB): pb.WorkloadStateChunk__Output[] {
  return files.flatMap(({ role, bytes }) => {
    const pieces: pb.WorkloadStateChunk__Output[] = [];
    for (let at = 0; at < bytes.length; at += pieceBytes) pieces.push(data(bytes.subarray(at, at + pieceBytes)));
    return [file(role, bytes.length), ...pieces, end(bytes)];
  });
}

async function* streamOf(messages: pb.WorkloadStateChunk__Output[]): AsyncGenerator<pb.WorkloadStateChunk__Output> {
  for (const m of messages) yield await Promise.resolve(m);
}

let clock = Date.parse('2025-03-01T12:00:00Z');
function meta(id: string, extra: Partial<BackupMeta> = {}): BackupMeta {
  clock += 1000;
  return { id, workload_id: 'w-1', workload_name: 'web', kind: 'vm', spec: { name: 'web', kind: 'vm', vcpus: 2 }, created_at: new Date(clock).toISOString(), memory: false, ...extra };
}

function write(repo: DirectoryBackupRepository, id: string, files: SourceFile[], extra: Partial<BackupMeta> = {}): Promise<BackupManifest> {
  return repo.write(meta(id, extra), streamOf(messagesOf(files)));
}

/** What `read` yields, put back together; also the largest data message. */
async function readBack(stream: AsyncIterable<pb.WorkloadStateChunk>): Promise<{ files: (SourceFile & { sha256: string; announced: number })[]; largestData: number }> {
  const files: (SourceFile & { sha256: string; announced: number; pieces: Buffer[] })[] = [];
  let largestData = 0;
  for await (const m of stream) {
    if (m.file) files.push({ role: m.file.role ?? '', announced: Number(m.file.size_bytes), bytes: Buffer.alloc(0), sha256: '', pieces: [] });
    const current = files.at(-1);
    if (m.data) {
      const piece = Buffer.from(m.data);
      largestData = Math.max(largestData, piece.length);
      current?.pieces.push(piece);
    }
    if (m.file_end && current) current.sha256 = m.file_end.sha256 ?? '';
  }
  return { files: files.map(({ pieces, ...f }) => ({ ...f, bytes: Buffer.concat(pieces) })), largestData };
}

/** Data messages read before the stream failed, and how it failed. */
async function readUntilError(stream: AsyncIterable<pb.WorkloadStateChunk>): Promise<{ bytesYielded: Buffer; error: unknown }> {
  const pieces: Buffer[] = [];
  try {
    for await (const m of stream) if (m.data) pieces.push(Buffer.from(m.data));
  } catch (error) {
    return { bytesYielded: Buffer.concat(pieces), error };
  }
  return { bytesYielded: Buffer.concat(pieces), error: undefined };
}

const chunkPath = (dir: string, digest: string) => join(dir, 'chunks', digest.slice(0, 2), digest);
const chunkFiles = (dir: string) =>
  readdirSync(join(dir, 'chunks'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => readdirSync(join(dir, 'chunks', e.name)));
const manifestFiles = (dir: string) => readdirSync(join(dir, 'backups'));
const tmpFiles = (dir: string) => readdirSync(join(dir, 'tmp'));

/** Random bytes: no two calls share a chunk. */
const bytesOf = (size: number) => randomBytes(size);

describe('DirectoryBackupRepository', () => {
  describe('write then read gives back every file byte for byte', () => {
    const cases: { name: string; sizes: [role: string, bytes: number][]; pieceBytes?: number }[] = [
      { name: 'a disk and an image, neither a multiple of 4 MiB', sizes: [['disk:root', 2 * CHUNK + 12_345], ['image', 1000]] },
      { name: 'an empty file between two others', sizes: [['disk:root', 17], ['disk:empty', 0], ['disk:data', CHUNK + 1]] },
      { name: 'exactly one chunk, and exactly two', sizes: [['disk:one', CHUNK], ['disk:two', 2 * CHUNK]] },
      { name: 'pieces that straddle chunk boundaries', sizes: [['disk:root', 3 * CHUNK - 5]], pieceBytes: 1_000_003 },
      { name: 'one byte at a time', sizes: [['image', 300]], pieceBytes: 1 },
    ];

    it.each(cases)('$name', async ({ sizes, pieceBytes }) => {
      const { repo } = newRepo();
      const files = sizes.map(([role, size]) => ({ role, bytes: bytesOf(size) }));
      const manifest = await repo.write(meta('bk-round-trip'), streamOf(messagesOf(files, pieceBytes)));

      const total = sizes.reduce((sum, [, size]) => sum + size, 0);
      expect(manifest).toMatchObject({ id: 'bk-round-trip', size_bytes: total, stored_bytes: total });
      expect(manifest.files.map((f) => [f.role, f.size_bytes, f.sha256, f.chunks.length])).toEqual(files.map((f) => [f.role, f.bytes.length, sha(f.bytes), Math.ceil(f.bytes.length / CHUNK)]));
      await expect(repo.get('bk-round-trip')).resolves.toEqual(manifest);

      const back = await readBack(repo.read('bk-round-trip'));
      expect(back.files.map((f) => f.role)).toEqual(files.map((f) => f.role));
      back.files.forEach((f, i) => {
        const want = files[i]?.bytes ?? Buffer.alloc(0);
        expect(f.announced, `${f.role}'s announced size`).toBe(want.length);
        expect(f.bytes.equals(want), `${f.role}'s bytes`).toBe(true);
        expect(f.sha256, `${f.role}'s digest`).toBe(sha(want));
      });
      expect(back.largestData).toBeLessThanOrEqual(MiB);
    });

    it('keeps the spec and the rest of the meta as given', async () => {
      const { repo } = newRepo();
      const given = meta('bk-meta', { kind: 'container', memory: true, spec: { name: 'web', env: { A: '1' }, ports: [80, 443] }, created_at: '2025-03-01T13:00:00+01:00' });
      await repo.write(given, streamOf(messagesOf([{ role: 'image', bytes: bytesOf(10) }])));
      expect(await repo.get('bk-meta')).toMatchObject(given);
    });
  });

  describe('deduplication', () => {
    const base = bytesOf(3 * CHUNK + 100);
    const changedAt = (offset: number) => {
      const copy = Buffer.from(base);
      copy[offset] = (copy[offset] ?? 0) ^ 0xff;
      return copy;
    };
    const cases: { name: string; second: Buffer; wantStored: number }[] = [
      { name: 'the same data stores nothing new', second: base, wantStored: 0 },
      { name: 'one changed byte in a full chunk stores exactly that chunk', second: changedAt(CHUNK + 7), wantStored: CHUNK },
      { name: 'a changed tail stores only the short last chunk', second: changedAt(3 * CHUNK + 50), wantStored: 100 },
      { name: 'data grown past the old tail stores the chunks from the old tail on', second: Buffer.concat([base, bytesOf(CHUNK)]), wantStored: CHUNK + 100 },
    ];

    it.each(cases)('$name', async ({ second, wantStored }) => {
      const { repo, dir } = newRepo();
      const first = await write(repo, 'bk-1', [{ role: 'disk:root', bytes: base }]);
      expect(first.stored_bytes).toBe(base.length);
      const again = await write(repo, 'bk-2', [{ role: 'disk:root', bytes: second }]);
      expect(again.stored_bytes).toBe(wantStored);
      expect(again.size_bytes).toBe(second.length);
      const back = await readBack(repo.read('bk-2'));
      expect(back.files[0]?.bytes.equals(second)).toBe(true);
      expect(chunkFiles(dir)).toHaveLength(new Set([...first.files, ...again.files].flatMap((f) => f.chunks)).size);
    });

    it('stores a zero-filled chunk once, however often it appears', async () => {
      const { repo, dir } = newRepo();
      const zeros = Buffer.alloc(3 * CHUNK);
      const manifest = await write(repo, 'bk-zeros', [
        { role: 'disk:root', bytes: zeros },
        { role: 'disk:data', bytes: Buffer.alloc(CHUNK) },
      ]);
      expect(manifest.stored_bytes).toBe(CHUNK);
      expect(new Set(manifest.files.flatMap((f) => f.chunks)).size).toBe(1);
      expect(chunkFiles(dir)).toHaveLength(1);
      expect((await readBack(repo.read('bk-zeros'))).files[0]?.bytes.equals(zeros)).toBe(true);
    });

    it('counts a chunk that two concurrent writes both carry once', async () => {
      const { repo } = newRepo();
      const same = bytesOf(4 * CHUNK);
      const [a, b] = await Promise.all([write(repo, 'bk-a', [{ role: 'disk:root', bytes: same }]), write(repo, 'bk-b', [{ role: 'disk:root', bytes: same }])]);
      expect(a.stored_bytes + b.stored_bytes).toBe(same.length);
      await expect(repo.verify('bk-a')).resolves.toMatchObject({ ok: true });
      await expect(repo.verify('bk-b')).resolves.toMatchObject({ ok: true });
    });
  });

  describe('a stream that is not a whole, matching state leaves no backup', () => {
    const x = Buffer.from('xy');
    const big = bytesOf(CHUNK + 10);
    const cases: { name: string; messages: pb.WorkloadStateChunk__Output[]; want: RegExp }[] = [
      { name: 'fewer bytes than announced', messages: [file('image', 3), data(x), end(x)], want: /^file_end: message 3: image has 2 of its 3 bytes$/ },
      { name: 'more bytes than announced', messages: [file('image', 1), data(x)], want: /^data: message 2: image is longer than its 1 bytes$/ },
      { name: 'a digest that does not match', messages: [file('image', 2), data(x), end('yx')], want: /^file_end\.sha256: message 3: image arrived with SHA-256 [0-9a-f]{64}, not "[0-9a-f]{64}"$/ },
      { name: 'a digest that is no digest', messages: [file('image', 2), data(x), msg({ file_end: { sha256: 'abc' } })], want: /^file_end\.sha256: message 3: .* not "abc"$/ },
      { name: 'a digest mismatch after whole chunks', messages: [file('disk:root', big.length), data(big), end('other')], want: /^file_end\.sha256: message 3: disk:root arrived/ },
      { name: 'bytes before any file', messages: [data(x)], want: /^data: message 1: bytes before any file$/ },
      { name: 'a role that is no role', messages: [file('../../etc/passwd', 1)], want: /^file\.role: message 1: must be disk:NAME, memory or image, not "\.\.\/\.\.\/etc\/passwd"$/ },
      { name: 'an unknown role', messages: [file('swap', 1)], want: /^file\.role: message 1: must be disk:NAME, memory or image, not "swap"$/ },
      { name: 'a repeated role', messages: [file('image', 2), data(x), end(x), file('image', 2)], want: /^file\.role: message 4: image was sent already$/ },
      { name: 'a negative size', messages: [file('image', -1)], want: /^file\.size_bytes: message 1: must be a whole number of bytes, not -1$/ },
      { name: 'a file begun before the last ended', messages: [file('image', 2), file('disk:root', 2)], want: /^file: message 2: image has not ended$/ },
      { name: 'an end without a file', messages: [end(x)], want: /^file_end: message 1: no file has begun$/ },
      { name: 'a header', messages: [msg({ header: { workload_id: 'w-1' } })], want: /^header: message 1: a backup stream carries no header$/ },
      { name: 'an empty message', messages: [msg({})], want: /^part: message 1: empty$/ },
      { name: 'a stream cut off inside a file', messages: [file('disk:root', big.length), data(big.subarray(0, CHUNK + 1))], want: /^file_end: the stream ended inside disk:root, at 4194305 of its 4194314 bytes$/ },
      { name: 'a stream of no files', messages: [], want: /^file: the stream carried no files$/ },
    ];

    it.each(cases)('$name', async ({ messages, want }) => {
      const { repo, dir } = newRepo();
      const err: unknown = await repo.write(meta('bk-bad'), streamOf(messages)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(want);
      expect(manifestFiles(dir)).toEqual([]);
      expect(tmpFiles(dir), 'temporary files of the failed write').toEqual([]);
      await expect(repo.get('bk-bad')).rejects.toBeInstanceOf(NotFoundError);
      await expect(repo.list()).resolves.toEqual([]);
    });

    it('passes an error of the stream itself on, leaving what it stored to sweep', async () => {
      const { repo, dir } = newRepo();
      const bytes = bytesOf(2 * CHUNK);
      async function* failing(): AsyncGenerator<pb.WorkloadStateChunk__Output> {
        yield* streamOf(messagesOf([{ role: 'disk:root', bytes }]).slice(0, 6));
        throw new Error('the agent went away');
      }
      await expect(repo.write(meta('bk-cut'), failing())).rejects.toThrow(/^the agent went away$/);
      expect(manifestFiles(dir)).toEqual([]);
      expect(chunkFiles(dir)).toHaveLength(1);
      await expect(repo.sweep()).resolves.toEqual({ freedBytes: CHUNK });
      expect(chunkFiles(dir)).toEqual([]);
    });

    it('refuses a second backup of the same id, keeping the first', async () => {
      const { repo } = newRepo();
      const first = await write(repo, 'bk-dup', [{ role: 'image', bytes: bytesOf(10) }]);
      await expect(write(repo, 'bk-dup', [{ role: 'image', bytes: bytesOf(10) }])).rejects.toBeInstanceOf(AlreadyExistsError);
      const racing = await Promise.allSettled([write(repo, 'bk-race', [{ role: 'image', bytes: bytesOf(10) }]), write(repo, 'bk-race', [{ role: 'image', bytes: bytesOf(10) }])]);
      expect(racing.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      await expect(repo.get('bk-dup')).resolves.toEqual(first);
    });
  });

  describe('refuses what is not a backup id before it becomes a path', () => {
    const ids = ['../escape', '..', 'a/b', 'a\\b', '', '.hidden', 'bk.json', 'BK-UPPER', '-leading', 'a'.repeat(129), 'bk-1\0'];
    const calls: { name: string; call: (repo: DirectoryBackupRepository, id: string) => Promise<unknown> }[] = [
      { name: 'write', call: (repo, id) => repo.write(meta(id), streamOf(messagesOf([{ role: 'image', bytes: Buffer.from('x') }]))) },
      { name: 'get', call: (repo, id) => repo.get(id) },
      { name: 'remove', call: (repo, id) => repo.remove(id) },
      { name: 'verify', call: (repo, id) => repo.verify(id) },
      { name: 'read', call: (repo, id) => readBack(repo.read(id)) },
    ];

    it.each(calls)('$name', async ({ call }) => {
      const { repo, parent } = newRepo();
      // A manifest where `../escape` would lead: it must not be found.
      writeFileSync(join(parent, 'escape.json'), '{}');
      for (const id of ids) {
        const err: unknown = await call(repo, id).catch((e: unknown) => e);
        expect(err, `id ${JSON.stringify(id)}`).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).field, `id ${JSON.stringify(id)}`).toBe('id');
      }
      expect(readdirSync(parent)).toEqual(['escape.json']);
    });

    it('refuses bad meta, naming the field', async () => {
      const { repo } = newRepo();
      const cases: [Partial<BackupMeta>, string][] = [
        [{ kind: 'pod' as 'vm' }, 'kind'],
        [{ created_at: 'yesterday' }, 'created_at'],
        [{ workload_name: '' }, 'workload_name'],
      ];
      for (const [extra, field] of cases) {
        const err: unknown = await repo.write(meta('bk-x', extra), streamOf([])).catch((e: unknown) => e);
        expect((err as InvalidArgumentError).field, JSON.stringify(extra)).toBe(field);
      }
    });

    it('makes ids that it accepts', async () => {
      const { repo } = newRepo();
      const id = newBackupId(new Date('2025-03-01T12:34:56.789Z'));
      expect(id).toMatch(/^bk-20250301123456-[0-9a-f]{8}$/);
      await expect(write(repo, id, [{ role: 'image', bytes: Buffer.from('x') }])).resolves.toMatchObject({ id });
    });
  });

  describe('list', () => {
    const backups: [id: string, workloadName: string, createdAt: string][] = [
      ['bk-a', 'web', '2025-01-01T10:00:00Z'],
      ['bk-b', 'db', '2025-01-01T12:00:00+01:00'], // 11:00Z: later than bk-a, earlier than bk-c, though it sorts after both as text
      ['bk-c', 'web', '2025-01-01T11:30:00Z'],
      ['bk-d', 'web', '2025-01-01T10:00:00.000Z'], // as old as bk-a: the greater id first
    ];
    const cases: { name: string; filter?: { workloadName?: string }; want: string[] }[] = [
      { name: 'all, newest first', want: ['bk-c', 'bk-b', 'bk-d', 'bk-a'] },
      { name: 'one workload', filter: { workloadName: 'web' }, want: ['bk-c', 'bk-d', 'bk-a'] },
      { name: 'another workload', filter: { workloadName: 'db' }, want: ['bk-b'] },
      { name: 'a workload with none', filter: { workloadName: 'cache' }, want: [] },
      { name: 'an empty filter', filter: {}, want: ['bk-c', 'bk-b', 'bk-d', 'bk-a'] },
    ];

    it.each(cases)('$name', async ({ filter, want }) => {
      const { repo } = newRepo();
      for (const [id, name, createdAt] of backups) await write(repo, id, [{ role: 'image', bytes: Buffer.from(id) }], { workload_name: name, created_at: createdAt });
      const listed = await repo.list(filter);
      expect(listed.map((b) => b.id)).toEqual(want);
      for (const b of listed) expect(b.files, 'files without their chunk lists').toEqual([{ role: 'image', size_bytes: b.id.length, sha256: sha(Buffer.from(b.id)) }]);
    });

    it('is empty for a repository never written to', async () => {
      await expect(newRepo().repo.list()).resolves.toEqual([]);
    });
  });

  describe('remove', () => {
    it('frees only the chunks no other backup uses', async () => {
      const { repo, dir } = newRepo();
      const shared = bytesOf(2 * CHUNK);
      const onlyA = bytesOf(CHUNK);
      const onlyB = bytesOf(1234);
      await write(repo, 'bk-a', [{ role: 'disk:root', bytes: Buffer.concat([shared, onlyA]) }, { role: 'image', bytes: Buffer.alloc(0) }]);
      await write(repo, 'bk-b', [{ role: 'disk:root', bytes: Buffer.concat([shared, onlyB]) }]);
      expect(chunkFiles(dir)).toHaveLength(4);

      await expect(repo.remove('bk-a')).resolves.toEqual({ freedBytes: CHUNK });
      await expect(repo.get('bk-a')).rejects.toBeInstanceOf(NotFoundError);
      await expect(repo.remove('bk-a')).rejects.toBeInstanceOf(NotFoundError);
      await expect(repo.verify('bk-b')).resolves.toEqual({ ok: true, checkedChunks: 3, damaged: [] });
      expect((await readBack(repo.read('bk-b'))).files[0]?.bytes.equals(Buffer.concat([shared, onlyB]))).toBe(true);

      await expect(repo.remove('bk-b')).resolves.toEqual({ freedBytes: 2 * CHUNK + 1234 });
      expect(chunkFiles(dir)).toEqual([]);
      expect(manifestFiles(dir)).toEqual([]);
    });

    it('waits for a write under way that shares its chunks, and keeps them', async () => {
      const { repo, dir } = newRepo();
      const shared = bytesOf(2 * CHUNK);
      const onlyA = bytesOf(CHUNK);
      const onlyB = bytesOf(CHUNK);
      await write(repo, 'bk-a', [{ role: 'disk:root', bytes: Buffer.concat([shared, onlyA]) }]);

      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      let reachedGate = () => {};
      const atGate = new Promise<void>((resolve) => (reachedGate = resolve));
      const messages = messagesOf([{ role: 'disk:root', bytes: Buffer.concat([shared, onlyB]) }]);
      async function* gated(): AsyncGenerator<pb.WorkloadStateChunk__Output> {
        // file, then the shared chunks' 8 MiB: deduplicated against bk-a's before the gate.
        yield* messages.slice(0, 9);
        reachedGate();
        await released;
        yield* messages.slice(9);
      }
      const order: string[] = [];
      const writing = repo.write(meta('bk-b'), gated()).then((m) => (order.push('write'), m));
      await atGate;
      let removeSettled = false;
      const removing = repo.remove('bk-a').finally(() => ((removeSettled = true), order.push('remove')));
      // Give a remove that did not wait every chance to delete the shared chunks now.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(removeSettled, 'remove finished while a write sharing its chunks was under way').toBe(false);
      expect(manifestFiles(dir)).toContain('bk-a.json');
      release();

      const [b, freed] = await Promise.all([writing, removing]);
      expect(order).toEqual(['write', 'remove']);
      expect(b.stored_bytes).toBe(CHUNK);
      expect(freed).toEqual({ freedBytes: CHUNK });
      await expect(repo.verify('bk-b')).resolves.toMatchObject({ ok: true, damaged: [] });
      expect((await readBack(repo.read('bk-b'))).files[0]?.bytes.equals(Buffer.concat([shared, onlyB]))).toBe(true);
    });
  });

  describe('sweep', () => {
    it('removes the chunks and temporary files no backup uses, and nothing else', async () => {
      const { repo, dir } = newRepo();
      const kept = bytesOf(CHUNK + 5);
      await write(repo, 'bk-keep', [{ role: 'disk:root', bytes: kept }]);
      const orphan = bytesOf(2 * CHUNK);
      // Cut off after its first chunk's 4 MiB: that chunk is stored, no manifest names it.
      await expect(repo.write(meta('bk-cut'), streamOf(messagesOf([{ role: 'disk:root', bytes: orphan }]).slice(0, 5)))).rejects.toBeInstanceOf(InvalidArgumentError);
      writeFileSync(join(dir, 'tmp', 'chunk-left-by-a-crash'), 'x'.repeat(10));
      writeFileSync(join(dir, 'chunks', 'ab'), 'not a chunk directory');
      const stray = readdirSync(join(dir, 'chunks')).find((p) => p !== 'ab') ?? '';
      writeFileSync(join(dir, 'chunks', stray, 'notes.txt'), 'not a chunk');

      await expect(repo.sweep()).resolves.toEqual({ freedBytes: CHUNK + 10 });
      await expect(repo.sweep()).resolves.toEqual({ freedBytes: 0 });
      await expect(repo.verify('bk-keep')).resolves.toEqual({ ok: true, checkedChunks: 2, damaged: [] });
      expect(chunkFiles(dir)).toHaveLength(3);
      expect(readFileSync(join(dir, 'chunks', stray, 'notes.txt'), 'utf8')).toBe('not a chunk');
      expect(readFileSync(join(dir, 'chunks', 'ab'), 'utf8')).toBe('not a chunk directory');
      expect(tmpFiles(dir)).toEqual([]);
    });

    it('frees nothing in a repository never written to', async () => {
      await expect(newRepo().repo.sweep()).resolves.toEqual({ freedBytes: 0 });
    });
  });

  describe('damaged chunks', () => {
    const disk = bytesOf(2 * CHUNK + 777);
    const image = bytesOf(1000);
    const cases: { name: string; damage: (path: string) => void; problem: 'missing' | 'corrupt' }[] = [
      {
        name: 'a flipped byte',
        damage: (p) => {
          const b = readFileSync(p);
          b[100] = (b[100] ?? 0) ^ 1;
          writeFileSync(p, b);
        },
        problem: 'corrupt',
      },
      { name: 'a chunk cut short', damage: (p) => truncateSync(p, 10), problem: 'corrupt' },
      { name: 'a chunk one byte too long', damage: (p) => writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.from('x')])), problem: 'corrupt' },
      { name: 'a missing chunk', damage: (p) => unlinkSync(p), problem: 'missing' },
    ];

    it.each(cases)('verify finds $name by role and index', async ({ damage, problem }) => {
      const { repo, dir } = newRepo();
      const m = await write(repo, 'bk-v', [{ role: 'disk:root', bytes: disk }, { role: 'image', bytes: image }]);
      const digest = m.files[0]?.chunks[1] ?? '';
      damage(chunkPath(dir, digest));
      await expect(repo.verify('bk-v')).resolves.toEqual({ ok: false, checkedChunks: 4, damaged: [{ role: 'disk:root', index: 1, sha256: digest, problem }] });
    });

    it.each(cases)('read ends with DATA_LOSS at $name, before any of its bytes', async ({ damage, problem }) => {
      const { repo, dir } = newRepo();
      const m = await write(repo, 'bk-r', [{ role: 'disk:root', bytes: disk }, { role: 'image', bytes: image }]);
      damage(chunkPath(dir, m.files[0]?.chunks[1] ?? ''));
      const { bytesYielded, error } = await readUntilError(repo.read('bk-r'));
      expect(error).toBeInstanceOf(DataLossError);
      expect((error as Error).message).toBe(`backup bk-r: chunk 1 of disk:root (${m.files[0]?.chunks[1] ?? ''}) is ${problem}`);
      expect(bytesYielded.equals(disk.subarray(0, CHUNK)), 'only the chunk before the damaged one was yielded').toBe(true);
    });

    it('reports every place of a damaged chunk used several times, and one missing in another file', async () => {
      const { repo, dir } = newRepo();
      const m = await write(repo, 'bk-z', [{ role: 'disk:root', bytes: Buffer.alloc(3 * CHUNK) }, { role: 'image', bytes: image }]);
      const zero = m.files[0]?.chunks[0] ?? '';
      const imageChunk = m.files[1]?.chunks[0] ?? '';
      writeFileSync(chunkPath(dir, zero), Buffer.alloc(CHUNK, 1));
      unlinkSync(chunkPath(dir, imageChunk));
      await expect(repo.verify('bk-z')).resolves.toEqual({
        ok: false,
        checkedChunks: 2,
        damaged: [
          { role: 'disk:root', index: 0, sha256: zero, problem: 'corrupt' },
          { role: 'disk:root', index: 1, sha256: zero, problem: 'corrupt' },
          { role: 'disk:root', index: 2, sha256: zero, problem: 'corrupt' },
          { role: 'image', index: 0, sha256: imageChunk, problem: 'missing' },
        ],
      });
    });

    it('a later write of the same bytes replaces a chunk cut short', async () => {
      const { repo, dir } = newRepo();
      const m = await write(repo, 'bk-1', [{ role: 'disk:root', bytes: disk }]);
      truncateSync(chunkPath(dir, m.files[0]?.chunks[0] ?? ''), 1);
      await expect(write(repo, 'bk-2', [{ role: 'disk:root', bytes: disk }])).resolves.toMatchObject({ stored_bytes: CHUNK });
      await expect(repo.verify('bk-1')).resolves.toMatchObject({ ok: true });
    });
  });

  describe('a manifest that cannot be read', () => {
    const cases: { name: string; content: (good: string) => string; problem: RegExp }[] = [
      { name: 'not JSON', content: () => '{"id": "bk-bad", "files": [', problem: /not JSON/ },
      { name: 'missing fields', content: () => JSON.stringify({ version: 1, id: 'bk-bad' }), problem: /chunk_bytes: is required/ },
      { name: 'a newer version', content: (good) => good.replace('"version":1', '"version":2').replace('"bk-good"', '"bk-bad"'), problem: /version/ },
      { name: 'another backup’s manifest', content: (good) => good, problem: /it names backup "bk-good"/ },
      { name: 'chunks that do not cover the size', content: (good) => good.replace('"bk-good"', '"bk-bad"').replace(/"size_bytes":10,/, '"size_bytes":5000000,'), problem: /files\.0\.chunks: 5000000 bytes make 2 chunks, not 1/ },
      { name: 'a path for a chunk', content: (good) => good.replace('"bk-good"', '"bk-bad"').replace(/"chunks":\["[0-9a-f]+"\]/, '"chunks":["../../../etc/passwd"]'), problem: /files\.0\.chunks\.0: must be 64 lower-case hex digits/ },
    ];

    it.each(cases)('$name: reported, never trusted', async ({ content, problem }) => {
      const { repo, dir } = newRepo();
      await write(repo, 'bk-good', [{ role: 'image', bytes: bytesOf(10) }]);
      writeFileSync(join(dir, 'backups', 'bk-bad.json'), content(readFileSync(join(dir, 'backups', 'bk-good.json'), 'utf8')));

      await expect(repo.get('bk-bad')).rejects.toThrow(DataLossError);
      await expect(repo.get('bk-bad')).rejects.toThrow(problem);
      await expect(repo.verify('bk-bad')).rejects.toThrow(DataLossError);
      await expect(readBack(repo.read('bk-bad'))).rejects.toThrow(DataLossError);
      expect((await repo.list()).map((b) => b.id)).toEqual(['bk-good']);
      // Its chunks are unknown, so nothing may be deleted for the others.
      await expect(repo.sweep()).rejects.toThrow(FailedPreconditionError);
      await expect(repo.remove('bk-good')).rejects.toThrow(/backup bk-bad: its manifest cannot be read/);
      await expect(repo.get('bk-good')).resolves.toMatchObject({ id: 'bk-good' });

      await expect(repo.remove('bk-bad')).resolves.toEqual({ freedBytes: 0 });
      await expect(repo.remove('bk-good')).resolves.toEqual({ freedBytes: 10 });
    });

    it('two of them do not keep each other from being removed', async () => {
      const { repo, dir } = newRepo();
      await write(repo, 'bk-good', [{ role: 'image', bytes: bytesOf(10) }]);
      writeFileSync(join(dir, 'backups', 'bk-bad1.json'), '{');
      writeFileSync(join(dir, 'backups', 'bk-bad2.json'), '[]');
      await expect(repo.remove('bk-bad1')).resolves.toEqual({ freedBytes: 0 });
      await expect(repo.remove('bk-bad2')).resolves.toEqual({ freedBytes: 0 });
      await expect(repo.sweep()).resolves.toEqual({ freedBytes: 0 });
      expect(manifestFiles(dir)).toEqual(['bk-good.json']);
    });
  });

  it('reads and verifies a repository another instance wrote (as after a restart)', async () => {
    const { repo, dir } = newRepo();
    const bytes = bytesOf(CHUNK + 1);
    await write(repo, 'bk-old', [{ role: 'disk:root', bytes }]);
    const again = new DirectoryBackupRepository(dir, log);
    await expect(again.verify('bk-old')).resolves.toEqual({ ok: true, checkedChunks: 2, damaged: [] });
    expect((await readBack(again.read('bk-old'))).files[0]?.bytes.equals(bytes)).toBe(true);
  });
});
