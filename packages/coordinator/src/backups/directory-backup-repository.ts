import { createHash, randomUUID, type Hash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AlreadyExistsError,
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  parseOrThrow,
  STATE_FILE_ROLE,
  zodToInvalidArgument,
  type Logger,
  type pb,
} from '@virtfleet/shared';
import { z } from 'zod';
import { BACKUP_ID, type BackupFile, type BackupManifest, type BackupMeta, type BackupRepository, type BackupSummary, type DamagedChunk, type VerifyResult } from './backup-repository.js';
import { ReadersWriterLock } from './readers-writer-lock.js';

/** Bytes per chunk, the unit of deduplication (as Proxmox Backup Server's fixed-size chunks for VM images). */
export const BACKUP_CHUNK_BYTES = 4 * 1024 * 1024;
/** Bytes per `data` message that `read` yields: well under gRPC's 4 MiB message limit. */
const DATA_MESSAGE_BYTES = 1024 * 1024;
/** Chunks of one write being stored while the next one fills, so hashing overlaps the disk. */
const CHUNK_STORES_IN_FLIGHT = 2;
/** Files opened at once when syncing directories. */
const PARALLEL_SYNCS = 16;
const MANIFEST_VERSION = 1;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const CHUNK_PREFIX = /^[0-9a-f]{2}$/;
const BACKUP_RESOURCE = 'backup';
const BACKUP_ID_RULE = 'must be 1-128 lower-case letters, digits or "-", starting with a letter or digit';

const sha256Schema = z.string().regex(SHA256_HEX, 'must be 64 lower-case hex digits');
const bytesSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const metaSchema = z.object({
  id: z.string().regex(BACKUP_ID, BACKUP_ID_RULE),
  workload_id: z.string().min(1).max(128),
  workload_name: z.string().min(1).max(253),
  kind: z.enum(['vm', 'container']),
  spec: z.unknown(),
  created_at: z.iso.datetime({ offset: true }),
  memory: z.boolean(),
});

const manifestSchema = metaSchema
  .extend({
    version: z.literal(MANIFEST_VERSION),
    chunk_bytes: z.number().int().positive(),
    files: z.array(z.object({ role: z.string().regex(STATE_FILE_ROLE), size_bytes: bytesSchema, sha256: sha256Schema, chunks: z.array(sha256Schema) })),
    size_bytes: bytesSchema,
    stored_bytes: bytesSchema,
  })
  .superRefine((m, ctx) => {
    const roles = new Set<string>();
    m.files.forEach((f, i) => {
      if (roles.has(f.role)) ctx.addIssue({ code: 'custom', path: ['files', i, 'role'], message: `${f.role} appears twice` });
      roles.add(f.role);
      const want = Math.ceil(f.size_bytes / m.chunk_bytes);
      if (f.chunks.length !== want) ctx.addIssue({ code: 'custom', path: ['files', i, 'chunks'], message: `${f.size_bytes} bytes make ${want} chunks, not ${f.chunks.length}` });
    });
    const total = m.files.reduce((sum, f) => sum + f.size_bytes, 0);
    if (m.size_bytes !== total) ctx.addIssue({ code: 'custom', path: ['size_bytes'], message: `the files hold ${total} bytes, not ${m.size_bytes}` });
  });

type StoredManifest = z.output<typeof manifestSchema>;
type Loaded = { ok: true; manifest: BackupManifest; chunkBytes: number } | { ok: false; problem: string };
type ChunkRead = { bytes: Buffer; problem?: undefined } | { problem: 'missing' | 'corrupt' };

/**
 * A BackupRepository in a directory, which may be on shared storage:
 *
 *     <dir>/chunks/<first 2 hex>/<sha256>   content-addressed chunks
 *     <dir>/backups/<id>.json               one manifest per backup
 *     <dir>/tmp/                            chunks and manifests being written
 *
 * Every file is written under tmp/, synced, then renamed to its name, so a
 * name never holds half a file. Chunks are fixed-size (BACKUP_CHUNK_BYTES);
 * zero-filled ones are ordinary chunks, stored once like any other.
 *
 * Assumes one process writes to the directory at a time (the coordinator
 * leader): writes are kept apart from `remove` and `sweep` by an in-process
 * lock only. Two processes writing at once (a deposed leader still finishing
 * a write) could have a sweep delete chunks of the other's write in progress.
 */
export class DirectoryBackupRepository implements BackupRepository {
  /** Shared: writes. Exclusive: remove and sweep, which delete chunks. */
  private readonly lock = new ReadersWriterLock();
  /** Ids being written, so two writes of one id cannot both succeed. */
  private readonly writing = new Set<string>();
  /** Chunks being stored, by digest, so concurrent writes of the same bytes store them once. */
  private readonly storing = new Map<string, Promise<number>>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  async write(meta: BackupMeta, stream: AsyncIterable<pb.WorkloadStateChunk__Output>): Promise<BackupManifest> {
    const m = parseOrThrow(metaSchema, meta);
    if (this.writing.has(m.id)) throw new AlreadyExistsError(`backup ${JSON.stringify(m.id)} is being written`);
    this.writing.add(m.id);
    try {
      return await this.lock.shared(async () => {
        if (await exists(this.manifestPath(m.id))) throw new AlreadyExistsError(`backup ${JSON.stringify(m.id)} exists`);
        await this.makeLayout();
        const intake = new StreamIntake((digest, bytes) => this.storeChunk(digest, bytes));
        try {
          for await (const message of stream) await intake.take(message);
          const files = await intake.finish();
          const manifest: BackupManifest = { ...m, files, size_bytes: files.reduce((sum, f) => sum + f.size_bytes, 0), stored_bytes: intake.storedBytes };
          await this.commit(manifest);
          return manifest;
        } finally {
          await intake.settle();
        }
      });
    } finally {
      this.writing.delete(m.id);
    }
  }

  async list(filter: { workloadName?: string } = {}): Promise<BackupSummary[]> {
    const found: BackupSummary[] = [];
    for (const id of await this.manifestIds()) {
      const loaded = await this.loadIfThere(id);
      if (!loaded) continue;
      if (!loaded.ok) {
        this.log.warn({ backup: id, problem: loaded.problem }, 'leaving out a backup whose manifest cannot be read');
        continue;
      }
      const { files, ...rest } = loaded.manifest;
      if (filter.workloadName !== undefined && rest.workload_name !== filter.workloadName) continue;
      found.push({ ...rest, files: files.map(({ role, size_bytes, sha256 }) => ({ role, size_bytes, sha256 })) });
    }
    return found.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  async get(id: string): Promise<BackupManifest> {
    return (await this.loadValid(id)).manifest;
  }

  async remove(id: string): Promise<{ freedBytes: number }> {
    checkId(id);
    return await this.lock.exclusive(async () => {
      const target = await this.load(id);
      // An unreadable manifest's chunks are unknown: none is freed here, and the others need not be read.
      const unshared = new Set(target.ok ? target.manifest.files.flatMap((f) => f.chunks) : []);
      for (const other of target.ok ? await this.manifestIds() : []) {
        if (other === id) continue;
        const loaded = await this.loadIfThere(other);
        if (!loaded) continue;
        if (!loaded.ok) throw malformedBlocksDeletion(other, loaded.problem);
        for (const f of loaded.manifest.files) for (const digest of f.chunks) unshared.delete(digest);
      }
      await unlink(this.manifestPath(id));
      await syncDir(join(this.dir, 'backups'));
      let freedBytes = 0;
      for (const digest of unshared) freedBytes += await removeFile(this.chunkPath(digest));
      return { freedBytes };
    });
  }

  async verify(id: string): Promise<VerifyResult> {
    const { manifest, chunkBytes } = await this.loadValid(id);
    const verdicts = new Map<string, 'ok' | 'missing' | 'corrupt'>();
    const damaged: DamagedChunk[] = [];
    for (const file of manifest.files) {
      for (const [index, digest] of file.chunks.entries()) {
        const length = chunkLength(file.size_bytes, index, chunkBytes);
        const key = `${digest}/${length}`;
        let verdict = verdicts.get(key);
        if (!verdict) {
          verdict = (await this.readChunk(digest, length)).problem ?? 'ok';
          verdicts.set(key, verdict);
        }
        if (verdict !== 'ok') damaged.push({ role: file.role, index, sha256: digest, problem: verdict });
      }
    }
    if (damaged.length > 0) await this.checkStillThere(id);
    return { ok: damaged.length === 0, checkedChunks: verdicts.size, damaged };
  }

  async *read(id: string): AsyncGenerator<pb.WorkloadStateChunk> {
    const { manifest, chunkBytes } = await this.loadValid(id);
    for (const file of manifest.files) {
      yield { file: { role: file.role, size_bytes: file.size_bytes } };
      const readAt = (index: number): Promise<ChunkRead> | undefined => {
        const digest = file.chunks[index];
        if (digest === undefined) return undefined;
        const reading = this.readChunk(digest, chunkLength(file.size_bytes, index, chunkBytes));
        // Read ahead of the consumer; a consumer that stops early leaves it to finish unobserved.
        reading.catch(() => undefined);
        return reading;
      };
      let next = readAt(0);
      for (let index = 0; next; index++) {
        const got = await next;
        if (got.problem) {
          await this.checkStillThere(id);
          throw new DataLossError(`backup ${id}: chunk ${index} of ${file.role} (${file.chunks[index] ?? ''}) is ${got.problem}`);
        }
        next = readAt(index + 1);
        for (let at = 0; at < got.bytes.length; at += DATA_MESSAGE_BYTES) yield { data: got.bytes.subarray(at, at + DATA_MESSAGE_BYTES) };
      }
      yield { file_end: { sha256: file.sha256 } };
    }
  }

  async sweep(): Promise<{ freedBytes: number }> {
    return await this.lock.exclusive(async () => {
      const used = new Set<string>();
      for (const id of await this.manifestIds()) {
        const loaded = await this.loadIfThere(id);
        if (!loaded) continue;
        if (!loaded.ok) throw malformedBlocksDeletion(id, loaded.problem);
        for (const f of loaded.manifest.files) for (const digest of f.chunks) used.add(digest);
      }
      let freedBytes = 0;
      const chunks = join(this.dir, 'chunks');
      for (const prefix of await namesIn(chunks)) {
        if (!CHUNK_PREFIX.test(prefix)) continue;
        for (const name of await namesIn(join(chunks, prefix))) {
          if (SHA256_HEX.test(name) && name.startsWith(prefix) && !used.has(name)) freedBytes += await removeFile(join(chunks, prefix, name));
        }
      }
      // No write is under way (the lock), so whatever is in tmp/ was left by one that crashed.
      const tmp = join(this.dir, 'tmp');
      for (const name of await namesIn(tmp)) freedBytes += await removeFile(join(tmp, name));
      if (freedBytes > 0) this.log.info({ dir: this.dir, freedBytes }, 'swept chunks no backup uses');
      return { freedBytes };
    });
  }

  private chunkPath(digest: string): string {
    return join(this.dir, 'chunks', digest.slice(0, 2), digest);
  }

  private manifestPath(id: string): string {
    return join(this.dir, 'backups', `${id}.json`);
  }

  private tempPath(kind: 'chunk' | 'manifest'): string {
    return join(this.dir, 'tmp', `${kind}-${randomUUID()}`);
  }

  private async makeLayout(): Promise<void> {
    for (const sub of ['chunks', 'backups', 'tmp']) await mkdir(join(this.dir, sub), { recursive: true, mode: 0o700 });
  }

  /** Stores one chunk unless it is there already; answers the bytes it added. */
  private async storeChunk(digest: string, bytes: Buffer): Promise<number> {
    const other = this.storing.get(digest);
    if (other) {
      try {
        await other;
        return 0;
      } catch {
        // The write that was storing it failed; store it for this one.
      }
    }
    const storing = this.storeChunkFile(digest, bytes);
    this.storing.set(digest, storing);
    try {
      return await storing;
    } finally {
      if (this.storing.get(digest) === storing) this.storing.delete(digest);
    }
  }

  private async storeChunkFile(digest: string, bytes: Buffer): Promise<number> {
    const path = this.chunkPath(digest);
    // A chunk of the wrong length is damaged: replace it. One of the right length is trusted here; verify reads it.
    if ((await sizeOf(path)) === bytes.length) return 0;
    await mkdir(join(this.dir, 'chunks', digest.slice(0, 2)), { recursive: true, mode: 0o700 });
    await this.writeRenamed(this.tempPath('chunk'), path, bytes);
    return bytes.length;
  }

  /** Writes `bytes` to `temp`, syncs them and renames the file to `path`. */
  private async writeRenamed(temp: string, path: string, bytes: Buffer): Promise<void> {
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(bytes);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (err) {
      await removeFile(temp);
      throw err;
    }
  }

  /** Makes the backup exist: its chunks' names durable first, then its manifest. */
  private async commit(manifest: BackupManifest): Promise<void> {
    const prefixes = [...new Set(manifest.files.flatMap((f) => f.chunks.map((d) => d.slice(0, 2))))];
    for (let i = 0; i < prefixes.length; i += PARALLEL_SYNCS) {
      await Promise.all(prefixes.slice(i, i + PARALLEL_SYNCS).map((p) => syncDir(join(this.dir, 'chunks', p))));
    }
    const stored: StoredManifest = { version: MANIFEST_VERSION, chunk_bytes: BACKUP_CHUNK_BYTES, ...manifest };
    await this.writeRenamed(this.tempPath('manifest'), this.manifestPath(manifest.id), Buffer.from(JSON.stringify(stored)));
    await syncDir(join(this.dir, 'backups'));
  }

  /** Ids of the manifests in backups/, whatever their content. */
  private async manifestIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const name of await namesIn(join(this.dir, 'backups'))) {
      const id = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
      if (BACKUP_ID.test(id)) ids.push(id);
    }
    return ids;
  }

  private async load(id: string): Promise<Loaded> {
    let text: string;
    try {
      text = await readFile(this.manifestPath(id), 'utf8');
    } catch (err) {
      if (isCode(err, 'ENOENT')) throw new NotFoundError(BACKUP_RESOURCE, id, { cause: err });
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      return { ok: false, problem: `not JSON: ${err instanceof Error ? err.message : String(err)}` };
    }
    const parsed = manifestSchema.safeParse(doc);
    if (!parsed.success) return { ok: false, problem: zodToInvalidArgument(parsed.error, '', { value: doc }).message };
    const { version: _version, chunk_bytes: chunkBytes, ...manifest } = parsed.data;
    if (manifest.id !== id) return { ok: false, problem: `it names backup ${JSON.stringify(manifest.id)}` };
    return { ok: true, manifest, chunkBytes };
  }

  /** As `load`, or undefined when the manifest has gone meanwhile. */
  private async loadIfThere(id: string): Promise<Loaded | undefined> {
    try {
      return await this.load(id);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  private async loadValid(id: string): Promise<{ manifest: BackupManifest; chunkBytes: number }> {
    checkId(id);
    const loaded = await this.load(id);
    if (!loaded.ok) throw new DataLossError(`backup ${id}: its manifest cannot be read: ${loaded.problem}`);
    return loaded;
  }

  /** A chunk found missing may have been removed with its backup meanwhile: NOT_FOUND then, not DATA_LOSS. */
  private async checkStillThere(id: string): Promise<void> {
    if (!(await exists(this.manifestPath(id)))) throw new NotFoundError(BACKUP_RESOURCE, id);
  }

  /** The chunk's bytes if it is `length` bytes long and hashes to `digest`. */
  private async readChunk(digest: string, length: number): Promise<ChunkRead> {
    let handle;
    try {
      handle = await open(this.chunkPath(digest), 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT')) return { problem: 'missing' };
      throw err;
    }
    try {
      // One byte more than wanted tells a chunk that is too long.
      const buffer = Buffer.allocUnsafe(length + 1);
      let filled = 0;
      for (let bytesRead = -1; bytesRead !== 0 && filled < buffer.length; filled += bytesRead) {
        ({ bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null));
      }
      const bytes = buffer.subarray(0, length);
      if (filled !== length || createHash('sha256').update(bytes).digest('hex') !== digest) return { problem: 'corrupt' };
      return { bytes };
    } catch (err) {
      if (isCode(err, 'EIO')) return { problem: 'corrupt' };
      throw err;
    } finally {
      await handle.close();
    }
  }
}

interface OpenFile {
  role: string;
  size: number;
  received: number;
  hash: Hash;
  chunks: string[];
  /** The chunk being filled: as long as the chunk will be. */
  buffer: Buffer | undefined;
  filled: number;
}

/**
 * Takes a state stream message by message: checks its order, the files'
 * roles, sizes and digests, cuts the bytes into chunks and hands each to
 * `store` as it fills, with at most CHUNK_STORES_IN_FLIGHT under way.
 */
class StreamIntake {
  storedBytes = 0;
  private count = 0;
  private open: OpenFile | undefined;
  private readonly files: BackupFile[] = [];
  private readonly pending: Promise<number>[] = [];

  constructor(private readonly store: (digest: string, bytes: Buffer) => Promise<number>) {}

  async take(message: pb.WorkloadStateChunk__Output): Promise<void> {
    this.count++;
    const where = `message ${this.count}`;
    if (message.header) throw new InvalidArgumentError('header', `${where}: a backup stream carries no header`);
    if (message.file) {
      if (this.open) throw new InvalidArgumentError('file', `${where}: ${this.open.role} has not ended`);
      const { role, size_bytes: size } = message.file;
      if (!STATE_FILE_ROLE.test(role)) throw new InvalidArgumentError('file.role', `${where}: must be disk:NAME, memory or image, not ${JSON.stringify(role.slice(0, 80))}`);
      if (this.files.some((f) => f.role === role)) throw new InvalidArgumentError('file.role', `${where}: ${role} was sent already`);
      if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError('file.size_bytes', `${where}: must be a whole number of bytes, not ${size}`);
      this.open = { role, size, received: 0, hash: createHash('sha256'), chunks: [], buffer: undefined, filled: 0 };
      return;
    }
    const file = this.open;
    if (message.data) {
      if (!file) throw new InvalidArgumentError('data', `${where}: bytes before any file`);
      const data = message.data;
      file.received += data.length;
      if (file.received > file.size) throw new InvalidArgumentError('data', `${where}: ${file.role} is longer than its ${file.size} bytes`);
      file.hash.update(data);
      for (let at = 0; at < data.length; ) {
        file.buffer ??= Buffer.allocUnsafe(Math.min(BACKUP_CHUNK_BYTES, file.size - file.chunks.length * BACKUP_CHUNK_BYTES));
        const copied = data.copy(file.buffer, file.filled, at);
        file.filled += copied;
        at += copied;
        if (file.filled === file.buffer.length) await this.seal(file, file.buffer);
      }
      return;
    }
    if (message.file_end) {
      if (!file) throw new InvalidArgumentError('file_end', `${where}: no file has begun`);
      this.open = undefined;
      if (file.received !== file.size) throw new InvalidArgumentError('file_end', `${where}: ${file.role} has ${file.received} of its ${file.size} bytes`);
      const digest = file.hash.digest('hex');
      const claimed = message.file_end.sha256;
      if (claimed !== digest) throw new InvalidArgumentError('file_end.sha256', `${where}: ${file.role} arrived with SHA-256 ${digest}, not ${JSON.stringify(claimed.slice(0, 64))}`);
      this.files.push({ role: file.role, size_bytes: file.size, sha256: digest, chunks: file.chunks });
      return;
    }
    throw new InvalidArgumentError('part', `${where}: empty`);
  }

  /** The files, once the stream has ended whole and every chunk is stored. */
  async finish(): Promise<BackupFile[]> {
    if (this.open) throw new InvalidArgumentError('file_end', `the stream ended inside ${this.open.role}, at ${this.open.received} of its ${this.open.size} bytes`);
    if (this.files.length === 0) throw new InvalidArgumentError('file', 'the stream carried no files');
    await this.drain(0);
    return this.files;
  }

  /** Waits for every store under way, failed or not: nothing writes into the repository after the write is over. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.pending.splice(0));
  }

  private async seal(file: OpenFile, bytes: Buffer): Promise<void> {
    file.buffer = undefined;
    file.filled = 0;
    const digest = createHash('sha256').update(bytes).digest('hex');
    file.chunks.push(digest);
    const storing = this.store(digest, bytes);
    // Awaited in drain or settle; until then a failure must not count as unhandled.
    storing.catch(() => undefined);
    this.pending.push(storing);
    await this.drain(CHUNK_STORES_IN_FLIGHT);
  }

  private async drain(atMost: number): Promise<void> {
    while (this.pending.length > atMost) {
      const oldest = this.pending.shift();
      if (oldest) this.storedBytes += await oldest;
    }
  }
}

function checkId(id: string): void {
  if (!BACKUP_ID.test(id)) throw new InvalidArgumentError('id', `${BACKUP_ID_RULE}, not ${JSON.stringify(id.slice(0, 140))}`);
}

function chunkLength(fileBytes: number, index: number, chunkBytes: number): number {
  return Math.min(chunkBytes, fileBytes - index * chunkBytes);
}

function malformedBlocksDeletion(id: string, problem: string): FailedPreconditionError {
  return new FailedPreconditionError(`backup ${id}: its manifest cannot be read (${problem}), so which chunks it uses is unknown; no chunk is deleted until it is repaired or removed`);
}

function isCode(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

async function exists(path: string): Promise<boolean> {
  return (await sizeOf(path)) !== undefined;
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
}

/** The names in a directory; none if it is not there or is no directory. */
async function namesIn(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return [];
    throw err;
  }
}

/** Removes a file; answers its size, 0 if it was not there. */
async function removeFile(path: string): Promise<number> {
  const size = await sizeOf(path);
  if (size === undefined) return 0;
  try {
    await unlink(path);
    return size;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return 0;
    throw err;
  }
}

/** Makes the names in a directory (renames, removals) survive a crash. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems (network and FUSE ones) cannot sync a directory; PostgreSQL ignores the same two errors.
    if (!isCode(err, 'EINVAL') && !isCode(err, 'EBADF')) throw err;
  } finally {
    await handle.close();
  }
}
