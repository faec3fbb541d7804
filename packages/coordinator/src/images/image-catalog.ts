import { createHash } from 'node:crypto';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, StorageType, type ObjectStore } from '@nats-io/obj';
import {
  AlreadyExistsError,
  FORMAT_PROBE_BYTES,
  IMAGE_FORMATS,
  IMAGE_NAME,
  IMAGE_NAME_RULE,
  imageFromObject,
  InvalidArgumentError,
  KIND_OF_FORMAT,
  NotFoundError,
  sniffFormat,
  type CatalogImage,
  type ImageFormat,
  type Logger,
  type NatsConnection,
} from '@virtfleet/shared';
import { formatMismatch, sizeMismatch } from './image-format.js';

/** What an import announces before its bytes. */
export interface ImportHeader {
  name: string;
  format: string;
  size: number;
  /** 64 hex digits, or '' when the importer gives none. */
  sha256: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const IMAGE_RESOURCE = 'image';

export interface ImageCatalogOptions {
  bucket: string;
  replicas: number;
  /** The largest image accepted, in bytes. */
  maxImageBytes: number;
}

/**
 * The image catalog, kept in a JetStream object store, which chunks each
 * image into the stream and digests it; agents read images from the same
 * bucket. An image's kind, format, SHA-256 and import time ride in the
 * object's metadata, so the bucket alone is the catalog. An import streams
 * into the bucket while it is checked (declared size, declared digest,
 * content of the declared format); a check that fails aborts the upload,
 * and the object store then drops the chunks already stored, so a refused
 * import leaves nothing behind.
 */
export class ImageCatalog {
  /** Names being imported by this coordinator now. */
  private readonly importing = new Set<string>();

  private constructor(
    private readonly store: ObjectStore,
    private readonly jsm: JetStreamManager,
    private readonly options: ImageCatalogOptions,
    private readonly log: Logger,
  ) {}

  static async open(nc: NatsConnection, options: ImageCatalogOptions, log: Logger): Promise<ImageCatalog> {
    const store = await new Objm(nc).create(options.bucket, { storage: StorageType.File, replicas: options.replicas, description: 'virtfleet image catalog' });
    return new ImageCatalog(store, await jetstreamManager(nc), options, log);
  }

  /**
   * Removes the chunks of uploads that never finished: an import whose
   * coordinator died mid-way leaves its chunks in the bucket's stream with
   * no entry naming them. Chunks whose last one is younger than
   * `olderThanMs` may belong to an import still under way and stay.
   * Resolves to the number of abandoned uploads removed.
   */
  async sweepAbandonedUploads(olderThanMs: number): Promise<number> {
    const stream = `OBJ_${this.options.bucket}`;
    const chunkPrefix = `$O.${this.options.bucket}.C.`;
    // Entries first: an upload that completes after this read is young, and young chunks stay.
    const live = new Set((await this.store.list()).map((i) => i.nuid));
    const info = await this.jsm.streams.info(stream, { subjects_filter: `${chunkPrefix}>` });
    let removed = 0;
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      if (live.has(subject.slice(chunkPrefix.length))) continue;
      const last = await this.jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
      if (!last || Date.now() - last.time.getTime() < olderThanMs) continue;
      await this.jsm.streams.purge(stream, { filter: subject });
      removed++;
      this.log.warn({ upload: subject.slice(chunkPrefix.length), chunksOf: subject }, 'removed the chunks of an image upload that never finished');
    }
    return removed;
  }

  /**
   * Validates `header`, then streams `data` into the catalog.
   * @throws InvalidArgumentError naming the header field or `data` when a check fails (nothing is stored)
   * @throws AlreadyExistsError when the name holds other content, or is being imported now
   */
  async import(header: ImportHeader, data: AsyncIterable<Uint8Array>): Promise<CatalogImage> {
    const format = this.checkHeader(header);
    const existing = await this.get(header.name);
    if (existing) {
      if (header.sha256 && existing.digest === `sha256:${header.sha256}` && existing.size === header.size && existing.format === format) return existing;
      throw new AlreadyExistsError(`image ${header.name} exists with ${existing.digest}; delete it first, or import under another name`);
    }
    if (this.importing.has(header.name)) throw new AlreadyExistsError(`image ${header.name} is being imported now`);
    this.importing.add(header.name);
    try {
      const createdAt = new Date().toISOString();
      const checked = new CheckedUpload(header, format, data);
      const metadata: Record<string, string> = { kind: KIND_OF_FORMAT[format], format, created_at: createdAt };
      const info = await this.store.put({ name: header.name, metadata }, checked.stream()).catch((err: unknown) => {
        throw checked.failure ?? err;
      });
      const image = imageFromObject(info);
      if (!image) throw new Error(`image ${header.name} was stored without its metadata`);
      this.log.info({ image: image.name, format, size: image.size, digest: image.digest }, 'image imported');
      return image;
    } finally {
      this.importing.delete(header.name);
    }
  }

  async get(name: string): Promise<CatalogImage | undefined> {
    if (!IMAGE_NAME.test(name)) return undefined;
    const info = await this.store.info(name);
    return info ? imageFromObject(info) : undefined;
  }

  async list(): Promise<CatalogImage[]> {
    const infos = await this.store.list();
    return infos.flatMap((i) => imageFromObject(i) ?? []).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** @throws NotFoundError for a name the catalog does not hold */
  async remove(name: string): Promise<CatalogImage> {
    const image = await this.get(name);
    if (!image) throw new NotFoundError(IMAGE_RESOURCE, name);
    await this.store.delete(name);
    this.log.info({ image: name, digest: image.digest }, 'image deleted');
    return image;
  }

  private checkHeader(header: ImportHeader): ImageFormat {
    if (!IMAGE_NAME.test(header.name)) throw new InvalidArgumentError('header.name', IMAGE_NAME_RULE);
    const format = IMAGE_FORMATS.find((f) => f === header.format);
    if (!format) throw new InvalidArgumentError('header.format', `must be one of ${IMAGE_FORMATS.join(', ')}`);
    if (!Number.isSafeInteger(header.size) || header.size <= 0) throw new InvalidArgumentError('header.size', 'must be the number of bytes that follow, at least 1');
    if (header.size > this.options.maxImageBytes) throw new InvalidArgumentError('header.size', `must be at most ${this.options.maxImageBytes} bytes (images.maxImageBytes)`);
    const sized = sizeMismatch(format, header.size);
    if (sized) throw new InvalidArgumentError('header.size', sized);
    if (header.sha256 && !SHA256_HEX.test(header.sha256)) throw new InvalidArgumentError('header.sha256', 'must be 64 lowercase hex digits');
    return format;
  }
}

/** The bytes of one import as a stream that checks them on the way: it errors, and so aborts the upload, at the first failed check. */
class CheckedUpload {
  failure: Error | undefined;
  private readonly hash = createHash('sha256');
  private received = 0;
  private head: Buffer = Buffer.alloc(0);
  private sniffed = false;

  constructor(
    private readonly header: ImportHeader,
    private readonly format: ImageFormat,
    private readonly data: AsyncIterable<Uint8Array>,
  ) {}

  stream(): ReadableStream<Uint8Array> {
    const chunks = this.data[Symbol.asyncIterator]();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const { value, done } = await chunks.next();
          if (done) {
            this.finish();
            controller.close();
            return;
          }
          this.take(value);
          controller.enqueue(value);
        } catch (err) {
          this.failure ??= err instanceof Error ? err : new Error(String(err));
          controller.error(this.failure);
          await chunks.return?.();
        }
      },
      cancel: async () => {
        await chunks.return?.();
      },
    });
  }

  private take(chunk: Uint8Array): void {
    this.received += chunk.length;
    if (this.received > this.header.size) throw new InvalidArgumentError('data', `is longer than the ${this.header.size} bytes of header.size`);
    this.hash.update(chunk);
    if (!this.sniffed) {
      this.head = Buffer.concat([this.head, chunk]).subarray(0, FORMAT_PROBE_BYTES);
      if (this.head.length >= FORMAT_PROBE_BYTES) this.sniff();
    }
  }

  /** The checks that need every byte. */
  private finish(): void {
    if (this.received !== this.header.size) throw new InvalidArgumentError('data', `ended after ${this.received} of the ${this.header.size} bytes of header.size`);
    if (!this.sniffed) this.sniff();
    const digest = this.hash.digest('hex');
    if (this.header.sha256 && digest !== this.header.sha256) throw new InvalidArgumentError('data', `has SHA-256 ${digest}, not the ${this.header.sha256} of header.sha256: the transfer was corrupted`);
  }

  private sniff(): void {
    this.sniffed = true;
    const mismatch = formatMismatch(this.format, sniffFormat(this.head));
    if (mismatch) throw new InvalidArgumentError('data', mismatch);
  }
}

