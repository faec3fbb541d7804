import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, NotFoundError, UnavailableError } from '@virtfleet/shared';
import { CatalogImageSource } from '../../packages/agent/src/images/catalog-source.js';
import { ImageCache, type ImageSource } from '../../packages/agent/src/images/image-cache.js';
import { ImageCatalog } from '../../packages/coordinator/src/images/image-catalog.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

const log = createLogger('image-cache-test', 'silent');
const BUCKET = 'images_cache_test';
const KB = 1024;

const qcow2 = (size: number, seed: number) => {
  const b = Buffer.alloc(size, seed);
  Buffer.from([0x51, 0x46, 0x49, 0xfb]).copy(b);
  return b;
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function* once(b: Buffer): AsyncGenerator<Uint8Array> {
  yield b;
}

/** The catalog source, counting reads and spoiling the first `corrupt` of them (one flipped byte in transit). */
function spoiling(source: ImageSource, corrupt = 0) {
  const counts = { reads: 0 };
  const wrapped: ImageSource = {
    describe: (name) => source.describe(name),
    async read(name) {
      counts.reads++;
      const spoil = counts.reads <= corrupt;
      const inner = await source.read(name);
      return (async function* () {
        let first = true;
        for await (const chunk of inner) {
          if (spoil && first) {
            const copy = Buffer.from(chunk);
            copy[copy.length >> 1]! ^= 0xff;
            first = false;
            yield copy;
          } else yield chunk;
        }
      })();
    },
  };
  return { source: wrapped, counts };
}

describe('ImageCache fetching from the catalog in a real nats-server', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  const images = { a: qcow2(300 * KB, 1), b: qcow2(300 * KB, 2), c: qcow2(300 * KB, 3) };
  const dirs: string[] = [];
  const cacheDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'image-cache-'));
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await nats.connect();
    const catalog = await ImageCatalog.open(nc, { bucket: BUCKET, replicas: 1, maxImageBytes: 2 ** 20 }, log);
    for (const [name, bytes] of Object.entries(images)) await catalog.import({ name, format: 'qcow2', size: bytes.length, sha256: sha256(bytes) }, once(bytes));
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('fetches an image once for concurrent requests, verifies it, and keeps it across a restart', async () => {
    const dir = cacheDir();
    const { source, counts } = spoiling(new CatalogImageSource(() => Promise.resolve(nc), BUCKET));
    const cache = await ImageCache.open(dir, source, { maxBytes: 10 * 2 ** 20 }, log);
    const leases = await Promise.all(Array.from({ length: 5 }, () => cache.acquire({ name: 'a' })));
    expect(counts.reads).toBe(1);
    const { image } = leases[0]!;
    expect(image).toMatchObject({ name: 'a', digest: `sha256:${sha256(images.a)}`, size: images.a.length, format: 'qcow2' });
    expect(sha256(readFileSync(image.path))).toBe(sha256(images.a));
    for (const l of leases) await l.release();
    const reopened = await ImageCache.open(dir, source, { maxBytes: 10 * 2 ** 20 }, log);
    expect(reopened.list().map((i) => i.digest)).toEqual([image.digest]);
    await reopened.acquire({ name: 'a' });
    expect(counts.reads).toBe(1);
  });

  it('throws a corrupted transfer away and fetches again', async () => {
    const dir = cacheDir();
    const { source, counts } = spoiling(new CatalogImageSource(() => Promise.resolve(nc), BUCKET), 2);
    const cache = await ImageCache.open(dir, source, { maxBytes: 10 * 2 ** 20 }, log);
    const { image } = await cache.acquire({ name: 'b' });
    expect(counts.reads).toBe(3);
    expect(sha256(readFileSync(image.path))).toBe(sha256(images.b));
  });

  it('gives up after its attempts with UNAVAILABLE and leaves no partial file', async () => {
    const dir = cacheDir();
    const { source, counts } = spoiling(new CatalogImageSource(() => Promise.resolve(nc), BUCKET), 10);
    const cache = await ImageCache.open(dir, source, { maxBytes: 10 * 2 ** 20, attempts: 3 }, log);
    await expect(cache.acquire({ name: 'c' })).rejects.toBeInstanceOf(UnavailableError);
    expect(counts.reads).toBe(3);
    expect(readdirSync(dir)).toEqual([]);
    expect(cache.list()).toEqual([]);
  });

  it('serves a pinned image it holds without the catalog, refuses a pin the catalog no longer holds, and holds by digest', async () => {
    const dir = cacheDir();
    const { source, counts } = spoiling(new CatalogImageSource(() => Promise.resolve(nc), BUCKET));
    const cache = await ImageCache.open(dir, source, { maxBytes: 10 * 2 ** 20 }, log);
    const digest = `sha256:${sha256(images.a)}`;
    const other = `sha256:${'0'.repeat(64)}`;
    await (await cache.acquire({ name: 'a', digest })).release();
    expect(counts.reads).toBe(1);
    const down = () => Promise.reject(new Error('catalog down'));
    const offline = await ImageCache.open(dir, { describe: down, read: down }, { maxBytes: 10 * 2 ** 20 }, log);
    expect((await offline.acquire({ name: 'a', digest })).image.digest).toBe(digest);
    await expect(offline.acquire({ name: 'a' }), 'an unpinned name needs the catalog').rejects.toBeInstanceOf(UnavailableError);
    await expect(cache.acquire({ name: 'a', digest: other })).rejects.toThrow(/holds sha256:/);
    expect(offline.hold(digest)?.image.digest).toBe(digest);
    expect(offline.hold(other)).toBeUndefined();
  });

  it('says NOT_FOUND for an image the catalog lacks', async () => {
    const cache = await ImageCache.open(cacheDir(), new CatalogImageSource(() => Promise.resolve(nc), BUCKET), { maxBytes: 2 ** 20 }, log);
    await expect(cache.acquire({ name: 'nope' })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('evicts the least recently used idle image past its limit, never one a workload holds', async () => {
    const dir = cacheDir();
    const cache = await ImageCache.open(dir, new CatalogImageSource(() => Promise.resolve(nc), BUCKET), { maxBytes: 700 * KB }, log);
    const a = await cache.acquire({ name: 'a' });
    const b = await cache.acquire({ name: 'b' });
    await b.release();
    const c = await cache.acquire({ name: 'c' });
    // a is held and c is new: b, idle and least recently used, goes.
    expect(cache.list().map((i) => i.name)).toEqual(['a', 'c']);
    expect(existsSync(b.image.path)).toBe(false);
    // Over the limit with everything held: nothing is evicted.
    const again = await cache.acquire({ name: 'b' });
    expect(cache.list().map((i) => i.name)).toEqual(['a', 'b', 'c']);
    for (const l of [a, c, again]) await l.release();
    expect(cache.bytes).toBeLessThanOrEqual(700 * KB);
  });
});
