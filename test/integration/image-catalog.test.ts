import { createHash } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlreadyExistsError, createLogger, InvalidArgumentError, NotFoundError } from '@virtfleet/shared';
import { ImageCatalog, type ImportHeader } from '../../packages/coordinator/src/images/image-catalog.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

const log = createLogger('image-catalog-test', 'silent');
const BUCKET = 'images_test';

/** A qcow2-looking image of `size` bytes whose content depends on `seed`. */
function qcow2(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size, seed);
  Buffer.from([0x51, 0x46, 0x49, 0xfb]).copy(b);
  return b;
}
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The bytes in chunks of 100 KiB, as an import streams them. */
async function* chunks(b: Buffer, size = 100 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

describe('ImageCatalog on a real nats-server (JetStream object store)', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let catalog: ImageCatalog;
  /** Bytes the bucket's stream holds: what a refused import must leave as it was. */
  const storedBytes = async () => (await (await new Objm(nc).open(BUCKET)).status()).size;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await nats.connect();
    catalog = await ImageCatalog.open(nc, { bucket: BUCKET, replicas: 1, maxImageBytes: 4 * 2 ** 20 }, log);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('imports an image in chunks, lists it with its size and SHA-256, and takes the same import again as a repeat', async () => {
    const bytes = qcow2(1_000_000);
    const image = await catalog.import({ name: 'base-1', format: 'qcow2', size: bytes.length, sha256: sha256(bytes) }, chunks(bytes));
    expect(image).toMatchObject({ name: 'base-1', kind: 'vm', format: 'qcow2', size: 1_000_000, digest: `sha256:${sha256(bytes)}` });
    expect(await catalog.list()).toEqual([image]);
    const again = await catalog.import({ name: 'base-1', format: 'qcow2', size: bytes.length, sha256: sha256(bytes) }, chunks(bytes));
    expect(again).toEqual(image);
    await expect(catalog.import({ name: 'base-1', format: 'qcow2', size: 1000, sha256: sha256(qcow2(1000, 2)) }, chunks(qcow2(1000, 2)))).rejects.toBeInstanceOf(AlreadyExistsError);
    // The object store's blob is what was sent.
    expect(sha256(Buffer.from((await (await new Objm(nc).open(BUCKET)).getBlob('base-1'))!))).toBe(sha256(bytes));
  });

  const raw = Buffer.alloc(4096, 3);
  const refusals: { name: string; header: ImportHeader; data: Buffer; field: string; why: RegExp }[] = [
    { name: 'a corrupted transfer', header: { name: 'c1', format: 'qcow2', size: 500_000, sha256: sha256(qcow2(500_000, 9)) }, data: qcow2(500_000, 8), field: 'data', why: /corrupted/ },
    { name: 'fewer bytes than announced', header: { name: 'c2', format: 'qcow2', size: 600_000, sha256: '' }, data: qcow2(500_000), field: 'data', why: /ended after 500000 of the 600000/ },
    { name: 'more bytes than announced', header: { name: 'c3', format: 'qcow2', size: 400_000, sha256: '' }, data: qcow2(500_000), field: 'data', why: /longer than the 400000/ },
    { name: 'content not of its format', header: { name: 'c4', format: 'qcow2', size: raw.length, sha256: '' }, data: raw, field: 'data', why: /not a qcow2 image/ },
    { name: 'a raw disk that is no whole sectors', header: { name: 'c5', format: 'raw', size: 1000, sha256: '' }, data: Buffer.alloc(1000), field: 'header.size', why: /sectors/ },
    { name: 'a name with a path in it', header: { name: '../etc', format: 'raw', size: raw.length, sha256: '' }, data: raw, field: 'header.name', why: /lowercase/ },
    { name: 'XML metacharacters in the name', header: { name: "a'<b>", format: 'raw', size: raw.length, sha256: '' }, data: raw, field: 'header.name', why: /lowercase/ },
    { name: 'an unknown format', header: { name: 'c6', format: 'vmdk', size: raw.length, sha256: '' }, data: raw, field: 'header.format', why: /qcow2, raw, kernel, initrd, docker-archive/ },
    { name: 'an image over the limit', header: { name: 'c7', format: 'raw', size: 8 * 2 ** 20, sha256: '' }, data: raw, field: 'header.size', why: /at most 4194304/ },
    { name: 'a malformed digest', header: { name: 'c8', format: 'raw', size: raw.length, sha256: 'abc' }, data: raw, field: 'header.sha256', why: /64 lowercase hex/ },
  ];
  it.each(refusals)('refuses $name, naming $field, and stores nothing', async ({ header, data, field, why }) => {
    const before = await storedBytes();
    const err = await catalog.import(header, chunks(data)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
    expect((err as Error).message).toMatch(why);
    expect(await storedBytes()).toBe(before);
    expect((await catalog.list()).map((i) => i.name)).toEqual(['base-1']);
  });

  it('sweeps the chunks of uploads that never finished, once quiet long enough, and nothing an image uses', async () => {
    const kept = qcow2(300_000, 7);
    await catalog.import({ name: 'kept', format: 'qcow2', size: kept.length, sha256: sha256(kept) }, chunks(kept));
    // What a coordinator killed mid-import leaves: chunks on a subject no entry names.
    const js = jetstream(nc);
    for (let i = 0; i < 3; i++) await js.publish(`$O.${BUCKET}.C.abandonedupload${i % 2}`, Buffer.alloc(50_000, i));
    const before = await storedBytes();
    expect(await catalog.sweepAbandonedUploads(60_000), 'too young: may be an import under way').toBe(0);
    expect(await storedBytes()).toBe(before);
    expect(await catalog.sweepAbandonedUploads(0)).toBe(2);
    expect(await storedBytes()).toBeLessThan(before - 140_000);
    // The image's own chunks are intact.
    const store = await new Objm(nc).open(BUCKET);
    const read = await store.getBlob('kept');
    expect(sha256(Buffer.from(read!))).toBe(sha256(kept));
    await catalog.remove('kept');
  });

  it('deletes an image, and a second delete is NOT_FOUND', async () => {
    const removed = await catalog.remove('base-1');
    expect(removed.name).toBe('base-1');
    expect(await catalog.list()).toEqual([]);
    await expect(catalog.remove('base-1')).rejects.toBeInstanceOf(NotFoundError);
  });
});
