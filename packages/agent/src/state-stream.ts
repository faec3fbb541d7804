import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { InvalidArgumentError, STATE_FILE_ROLE, type pb } from '@virtfleet/shared';

/** Bytes per data message: well under gRPC's 4 MiB message limit. */
export const STATE_CHUNK_BYTES = 1024 * 1024;
/** A file's role: `disk:NAME` (a VM's disk) or `image` (a container's committed image). */
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The messages that carry files of a workload's state: for each file, its
 * role and size, its bytes in pieces, and its SHA-256 at the end.
 */
export async function* stateChunks(files: Record<string, string>, signal?: AbortSignal): AsyncGenerator<pb.WorkloadStateChunk> {
  for (const [role, path] of Object.entries(files)) {
    const { size } = await stat(path);
    yield { file: { role, size_bytes: size } };
    const hash = createHash('sha256');
    for await (const piece of createReadStream(path, { highWaterMark: STATE_CHUNK_BYTES, ...(signal ? { signal } : {}) }) as AsyncIterable<Buffer>) {
      hash.update(piece);
      yield { data: piece };
    }
    yield { file_end: { sha256: hash.digest('hex') } };
  }
}

interface OpenFile {
  role: string;
  size: number;
  received: number;
  hash: Hash;
  out: WriteStream;
}

/**
 * Takes the messages of an import in order (a header first, then each file
 * as `stateChunks` sends it), writes the files into `dir` and checks each
 * one's size and SHA-256 as it ends. Anything out of order, an unknown or
 * repeated role, a size or digest that does not match, is INVALID_ARGUMENT
 * naming what was wrong; the caller then removes `dir`.
 */
export class StateReceiver {
  private header: pb.WorkloadStateHeader__Output | undefined;
  private open: OpenFile | undefined;
  private readonly done = new Map<string, string>();
  private count = 0;

  constructor(
    private readonly dir: string,
    /** The most bytes all files together may hold. */
    private readonly maxBytes: number,
  ) {}

  private total = 0;

  async take(chunk: pb.WorkloadStateChunk__Output): Promise<void> {
    this.count++;
    const where = `message ${this.count}`;
    if (!this.header) {
      if (!chunk.header) throw new InvalidArgumentError('header', `${where}: the first message must name the workload`);
      this.header = chunk.header;
      return;
    }
    if (chunk.header) throw new InvalidArgumentError('header', `${where}: only the first message names the workload`);
    if (chunk.file) {
      if (this.open) throw new InvalidArgumentError('file', `${where}: ${this.open.role} has not ended`);
      const { role, size_bytes: size } = chunk.file;
      if (!STATE_FILE_ROLE.test(role)) throw new InvalidArgumentError('file.role', `${where}: must be disk:NAME, memory or image, not ${JSON.stringify(role.slice(0, 80))}`);
      if (this.done.has(role)) throw new InvalidArgumentError('file.role', `${where}: ${role} was sent already`);
      if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError('file.size_bytes', `${where}: must be a whole number of bytes`);
      if (this.total + size > this.maxBytes) throw new InvalidArgumentError('file.size_bytes', `${where}: the state would exceed ${this.maxBytes} bytes`);
      this.total += size;
      const path = join(this.dir, `${this.done.size}-${role.replace(':', '-')}`);
      const out = createWriteStream(path, { mode: 0o600 });
      // Reported by finished() at the file's end; a file abandoned mid-way has nobody to report to.
      out.on('error', () => undefined);
      this.open = { role, size, received: 0, hash: createHash('sha256'), out };
      this.done.set(role, path);
      return;
    }
    const file = this.open;
    if (chunk.data) {
      if (!file) throw new InvalidArgumentError('data', `${where}: bytes before any file`);
      file.received += chunk.data.length;
      if (file.received > file.size) throw new InvalidArgumentError('data', `${where}: ${file.role} is longer than its ${file.size} bytes`);
      file.hash.update(chunk.data);
      if (!file.out.write(chunk.data)) await once(file.out, 'drain');
      return;
    }
    if (chunk.file_end) {
      if (!file) throw new InvalidArgumentError('file_end', `${where}: no file has begun`);
      this.open = undefined;
      file.out.end();
      await finished(file.out);
      if (file.received !== file.size) throw new InvalidArgumentError('file_end', `${where}: ${file.role} has ${file.received} of its ${file.size} bytes`);
      const digest = file.hash.digest('hex');
      if (!SHA256_HEX.test(chunk.file_end.sha256) || chunk.file_end.sha256 !== digest) throw new InvalidArgumentError('file_end.sha256', `${where}: ${file.role} arrived with SHA-256 ${digest}, not ${chunk.file_end.sha256.slice(0, 64)}`);
      return;
    }
    throw new InvalidArgumentError('part', `${where}: empty`);
  }

  /** The header and the files by role, once everything has arrived whole. */
  async finish(): Promise<{ header: pb.WorkloadStateHeader__Output; files: Record<string, string> }> {
    if (!this.header) throw new InvalidArgumentError('header', 'the import named no workload');
    if (this.open) {
      const { role, out } = this.open;
      out.destroy();
      throw new InvalidArgumentError('file_end', `${role} did not end`);
    }
    return { header: this.header, files: Object.fromEntries(this.done) };
  }

  /** Closes a file left open by a failed import, so that its directory can go. */
  abandon(): void {
    this.open?.out.destroy();
    this.open = undefined;
  }
}
