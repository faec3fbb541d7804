import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { errorMessage, NotFoundError, UnavailableError, type CatalogImage, type CatalogRef, type Logger } from '@virtfleet/shared';

/** What the cache needs to know of a catalog image. */
export type ImageDescription = Pick<CatalogImage, 'name' | 'digest' | 'size' | 'format'>;

/** Where images come from: the catalog's object store, in production. */
export interface ImageSource {
  /** The image the catalog holds under `name` now, or undefined. */
  describe(name: string): Promise<ImageDescription | undefined>;
  /** The image's bytes, from the start. */
  read(name: string): Promise<AsyncIterable<Uint8Array>>;
}

/** An image held on this host. */
export interface CachedImage extends ImageDescription {
  /** The file that holds it, read-only to workloads. */
  path: string;
  /** When a workload last acquired it (ms since the epoch): least recently used goes first. */
  lastUsedMs: number;
}

/** A cached image held for a workload; `release` lets it be evicted again (and resolves once any eviction it caused is done). */
export interface ImageLease {
  image: CachedImage;
  release(): Promise<void>;
}

export interface ImageCacheOptions {
  /** Bytes the cache keeps, at most, of images no workload holds. */
  maxBytes: number;
  /** Fetches of one image before it gives up on corrupted transfers. @default 3 */
  attempts?: number;
}

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/**
 * The images this host holds, fetched from the catalog on first use into
 * `<dir>/<hex digest>` (written to a temporary file, its SHA-256 checked,
 * then renamed, so a file under a digest's name always has that content).
 * Concurrent requests for one image share one fetch. A transfer whose
 * digest does not match is thrown away and fetched again, a few times. The
 * cache keeps at most `maxBytes` of images, evicting the least recently used
 * first, and never one a workload holds (`acquire` until `release`): a host
 * whose held images alone exceed the limit keeps them and says so.
 */
export class ImageCache {
  private readonly images = new Map<string, CachedImage>();
  private readonly fetching = new Map<string, Promise<CachedImage>>();
  private readonly holds = new Map<string, number>();

  private constructor(
    private readonly dir: string,
    private readonly source: ImageSource,
    private readonly options: ImageCacheOptions,
    private readonly log: Logger,
  ) {}

  /** Opens the cache in `dir`, taking up the images a previous run left there; unfinished downloads are removed. */
  static async open(dir: string, source: ImageSource, options: ImageCacheOptions, log: Logger): Promise<ImageCache> {
    await mkdir(dir, { recursive: true });
    const cache = new ImageCache(dir, source, options, log);
    for (const file of await readdir(dir)) {
      if (file.endsWith('.partial')) await rm(join(dir, file), { force: true });
      if (!file.endsWith('.json')) continue;
      const described = await readFile(join(dir, file), 'utf8')
        .then((text) => JSON.parse(text) as CachedImage)
        .catch(() => undefined);
      const hex = DIGEST.exec(described?.digest ?? '')?.[1];
      if (!described || !hex || file !== `${hex}.json`) continue;
      const held = await stat(join(dir, hex)).catch(() => undefined);
      if (held?.size !== described.size) continue;
      cache.images.set(described.digest, { ...described, path: join(dir, hex) });
    }
    return cache;
  }

  /**
   * The image `ref` names, fetched if this host lacks it, and held until
   * `release`. A pinned ref (`digest` set) is served from the cache without
   * asking the catalog when this host holds that content.
   * @throws NotFoundError when the catalog has no such image, or no longer the pinned content
   * @throws UnavailableError when every fetch came out corrupted or the catalog cannot be read
   */
  async acquire(ref: CatalogRef): Promise<ImageLease> {
    const cached = ref.digest ? this.images.get(ref.digest) : undefined;
    if (cached) return this.leaseOf(cached);
    const description = await this.source.describe(ref.name).catch((err: unknown) => {
      throw new UnavailableError(`cannot read image ${ref.name} from the catalog: ${errorMessage(err)}`, { cause: err });
    });
    if (!description) throw new NotFoundError('image', ref.name);
    if (ref.digest && description.digest !== ref.digest)
      throw new NotFoundError('image', `${ref.name}@${ref.digest} (the catalog's ${ref.name} holds ${description.digest} now)`);
    const image = this.images.get(description.digest) ?? (await this.fetchOnce(description));
    const lease = this.leaseOf(image);
    await this.evict();
    return lease;
  }

  /**
   * Holds an image this host has, by digest, without asking the catalog: for
   * the disks of workloads that existed before a restart. Undefined when the
   * cache lacks it.
   */
  hold(digest: string): ImageLease | undefined {
    const image = this.images.get(digest);
    return image ? this.leaseOf(image) : undefined;
  }

  private leaseOf(image: CachedImage): ImageLease {
    this.holds.set(image.digest, (this.holds.get(image.digest) ?? 0) + 1);
    image.lastUsedMs = Date.now();
    let released = false;
    return {
      image,
      release: () => {
        if (released) return Promise.resolve();
        released = true;
        const left = (this.holds.get(image.digest) ?? 1) - 1;
        if (left > 0) this.holds.set(image.digest, left);
        else this.holds.delete(image.digest);
        return this.evict();
      },
    };
  }

  /** The images held on this host, for telemetry. */
  list(): CachedImage[] {
    return [...this.images.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Bytes of every image held. */
  get bytes(): number {
    let total = 0;
    for (const i of this.images.values()) total += i.size;
    return total;
  }

  private fetchOnce(description: ImageDescription): Promise<CachedImage> {
    const running = this.fetching.get(description.digest);
    if (running) return running;
    const fetch = this.fetch(description).finally(() => this.fetching.delete(description.digest));
    this.fetching.set(description.digest, fetch);
    return fetch;
  }

  private async fetch(description: ImageDescription): Promise<CachedImage> {
    const hex = DIGEST.exec(description.digest)?.[1];
    if (!hex) throw new UnavailableError(`the catalog gave image ${description.name} the malformed digest ${description.digest}`);
    const path = join(this.dir, hex);
    const partial = `${path}.partial`;
    const attempts = this.options.attempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      const startedAt = performance.now();
      const hash = createHash('sha256');
      let size = 0;
      try {
        const counting = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hash.update(chunk);
            size += chunk.length;
            done(null, chunk);
          },
        });
        await pipeline(Readable.from(await this.source.read(description.name)), counting, createWriteStream(partial, { mode: 0o644 }));
        const got = hash.digest('hex');
        if (got !== hex || size !== description.size) throw new CorruptTransferError(`got ${size} bytes with SHA-256 ${got}, not ${description.size} bytes with ${hex}`);
        await rename(partial, path);
        const image: CachedImage = { ...description, path, lastUsedMs: Date.now() };
        await writeFile(`${path}.json`, JSON.stringify({ name: image.name, digest: image.digest, size: image.size, format: image.format, lastUsedMs: image.lastUsedMs }));
        this.images.set(image.digest, image);
        this.log.info({ image: description.name, digest: description.digest, bytes: size, ms: Math.round(performance.now() - startedAt), attempt }, 'image fetched');
        return image;
      } catch (err) {
        await rm(partial, { force: true });
        const corrupt = err instanceof CorruptTransferError;
        this.log.warn({ image: description.name, attempt, err: errorMessage(err) }, corrupt ? 'image transfer corrupted; fetching again' : 'image fetch failed');
        if (!corrupt || attempt >= attempts)
          throw new UnavailableError(`cannot fetch image ${description.name} (${description.digest}): ${errorMessage(err)}${corrupt ? ` (${attempt} attempts)` : ''}`, { cause: err });
      }
    }
  }

  /** Evicts the least recently used images nobody holds until the cache is within its limit. */
  private async evict(): Promise<void> {
    let total = this.bytes;
    if (total <= this.options.maxBytes) return;
    const idle = [...this.images.values()].filter((i) => !this.holds.has(i.digest) && !this.fetching.has(i.digest)).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
    for (const image of idle) {
      if (total <= this.options.maxBytes) break;
      this.images.delete(image.digest);
      total -= image.size;
      await rm(image.path, { force: true });
      await rm(`${image.path}.json`, { force: true });
      this.log.info({ image: image.name, digest: image.digest, bytes: image.size }, 'image evicted');
    }
    if (total > this.options.maxBytes) this.log.warn({ bytes: total, maxBytes: this.options.maxBytes }, 'images held by workloads exceed the cache limit');
  }
}

class CorruptTransferError extends Error {}
