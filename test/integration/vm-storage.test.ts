import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, InvalidArgumentError, NotFoundError, parseWorkloadSpec, ResourceExhaustedError, type WorkloadSpec } from '@virtfleet/shared';
import { VmStorage } from '../../packages/agent/src/drivers/libvirt/vm-storage.js';
import { CatalogImageSource } from '../../packages/agent/src/images/catalog-source.js';
import { ImageCache } from '../../packages/agent/src/images/image-cache.js';
import { ImageCatalog } from '../../packages/coordinator/src/images/image-catalog.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

const run = promisify(execFile);
const log = createLogger('vm-storage-test', 'silent');
const BUCKET = 'vm_storage_test';
const MIB = 2 ** 20;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const info = async (path: string) => JSON.parse((await run('qemu-img', ['info', '--output=json', path])).stdout) as { 'virtual-size': number; 'backing-filename'?: string; format: string };

/** VmStorage with the real tools (qemu-img, genisoimage), a real image cache fed by a real catalog in nats-server. */
describe('VmStorage: the files of VMs, made from catalog images', () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let root: string;
  let base: Buffer;
  let digest: string;
  const vm = (extra: Record<string, unknown> = {}): WorkloadSpec => parseWorkloadSpec({ name: 'db', kind: 'vm', vcpus: 1, memory_mib: 64, image: `disk@sha256:${digest}`, ...extra });
  const open = async (dir: string, maxCacheBytes = 64 * MIB) => {
    const cache = await ImageCache.open(join(dir, 'images'), new CatalogImageSource(() => Promise.resolve(nc), BUCKET), { maxBytes: maxCacheBytes }, log);
    const storage = new VmStorage(join(dir, 'vms'), cache, log);
    await storage.restore();
    return { cache, storage };
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await nats.connect();
    root = mkdtempSync(join(tmpdir(), 'vf-vm-storage-'));
    const file = join(root, 'base.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, '64M']);
    base = readFileSync(file);
    digest = sha256(base);
    const catalog = await ImageCatalog.open(nc, { bucket: BUCKET, replicas: 1, maxImageBytes: 64 * MIB }, log);
    await catalog.import({ name: 'disk', format: 'qcow2', size: base.length, sha256: digest }, (async function* () {
      yield base;
    })());
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    await run('umount', [join(root, 'small')]).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  it('makes a root overlay grown to disk_gib over the cached image, data disks and a seed; again returns the same; remove keeps the image', async () => {
    const dir = mkdtempSync(join(root, 'host-'));
    const { cache, storage } = await open(dir);
    const spec = vm({ disk_gib: 2, disks: [{ name: 'data', size_gib: 3 }], cloud_init: { user_data: '#cloud-config\nmessage: hi\n' } });
    const files = await storage.prepare('db-1', spec);
    expect(files.disks.map((d) => d.name)).toEqual(['root', 'data']);
    const overlay = await info(files.disks[0]!.path);
    expect(overlay).toMatchObject({ format: 'qcow2', 'virtual-size': 2 * 2 ** 30, 'backing-filename': join(dir, 'images', digest) });
    expect((await info(files.disks[1]!.path))['virtual-size']).toBe(3 * 2 ** 30);
    expect((await run('isoinfo', ['-d', '-i', files.seed!])).stdout).toMatch(/Volume id: cidata/);
    expect((await run('isoinfo', ['-R', '-i', files.seed!, '-x', '/user-data'])).stdout).toBe('#cloud-config\nmessage: hi\n');
    expect(await storage.prepare('db-1', spec), 'idempotent').toEqual(files);
    await storage.remove('db-1');
    expect(existsSync(join(dir, 'vms', 'db-1'))).toBe(false);
    expect(sha256(readFileSync(join(dir, 'images', digest))), 'the base image is untouched and kept').toBe(digest);
    expect(cache.list().map((i) => i.digest)).toEqual([`sha256:${digest}`]);
  });

  it('holds the image under a VM across a restart, so eviction cannot take it; removal lets it go', async () => {
    const dir = mkdtempSync(join(root, 'host-'));
    const first = await open(dir, 0);
    await first.storage.prepare('db-2', vm());
    // A new process: the cache (limit 0: keep nothing idle) and storage opened again over the same directories.
    const again = await open(dir, 0);
    expect(again.cache.hold(`sha256:${digest}`), 'held again by restore').toBeDefined();
    await (await again.cache.acquire({ name: 'disk', digest: `sha256:${digest}` })).release();
    expect(existsSync(join(dir, 'images', digest)), 'not evicted while the VM exists').toBe(true);
    await again.storage.remove('db-2');
  });

  it('keeps the image\'s own size for disk_gib 0', async () => {
    const dir = mkdtempSync(join(root, 'host-'));
    const { storage } = await open(dir);
    const files = await storage.prepare('db-3', vm({ disk_gib: 0 }));
    expect((await info(files.disks[0]!.path))['virtual-size']).toBe(64 * MIB);
  });

  it('refuses a disk_gib below the image, an image not in the catalog, and disks the filesystem cannot hold, leaving nothing', async () => {
    const dir = mkdtempSync(join(root, 'host-'));
    const { storage } = await open(dir);
    // A 3 GiB image cannot fit a 2 GiB root disk.
    const bigFile = join(root, 'big.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', bigFile, '3G']);
    const big = readFileSync(bigFile);
    const catalog = await ImageCatalog.open(nc, { bucket: BUCKET, replicas: 1, maxImageBytes: 64 * MIB }, log);
    await catalog.import({ name: 'big', format: 'qcow2', size: big.length, sha256: sha256(big) }, (async function* () {
      yield big;
    })());
    await expect(storage.prepare('db-4', vm({ image: `big@sha256:${sha256(big)}`, disk_gib: 2 }))).rejects.toThrow(InvalidArgumentError);
    await expect(storage.prepare('db-4', vm({ image: `gone@sha256:${'0'.repeat(64)}` }))).rejects.toThrow(NotFoundError);

    // A 4 MiB filesystem cannot take a 1 GiB data disk.
    const small = join(root, 'small');
    mkdirSync(small, { recursive: true });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
    const cramped = new VmStorage(join(small, 'vms'), (await open(dir)).cache, log);
    await cramped.restore();
    await expect(cramped.prepare('db-5', vm({ disks: [{ name: 'data', size_gib: 1 }] }))).rejects.toThrow(ResourceExhaustedError);
    expect(readdirSync(join(small, 'vms'))).toEqual([]);
    expect(readdirSync(join(dir, 'vms'))).toEqual([]);
  });
});
