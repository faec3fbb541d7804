import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, parseWorkloadSpec } from '@virtfleet/shared';
import { createLibvirtDriver } from '../../packages/agent/src/drivers/libvirt/libvirt-driver.js';
import type { Driver } from '../../packages/agent/src/drivers/driver.js';
import { CatalogImageSource } from '../../packages/agent/src/images/catalog-source.js';
import { ImageCache, type ImageSource } from '../../packages/agent/src/images/image-cache.js';
import { ImageCatalog } from '../../packages/coordinator/src/images/image-catalog.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';

const run = promisify(execFile);
const log = createLogger('vm-images-burst-test', 'silent');
const BUCKET = 'vm_images_burst_test';
const BURST = 50;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * A burst of VMs from one catalog image on one host: the libvirt test driver
 * (test:///default) stands in for QEMU, everything else is real: the catalog
 * in nats-server, the image cache, qemu-img overlays and cloud-init seeds.
 */
describe(`${BURST} VMs from one catalog image at once`, () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let dir: string;
  let driver: Driver;
  let digest: string;
  const reads = { count: 0 };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await nats.connect();
    dir = mkdtempSync(join(tmpdir(), 'vf-burst-'));
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '256M']);
    const base = readFileSync(join(dir, 'base.qcow2'));
    digest = sha256(base);
    const catalog = await ImageCatalog.open(nc, { bucket: BUCKET, replicas: 1, maxImageBytes: 2 ** 30 }, log);
    await catalog.import({ name: 'base', format: 'qcow2', size: base.length, sha256: digest }, (async function* () {
      yield base;
    })());
    const catalogSource = new CatalogImageSource(() => Promise.resolve(nc), BUCKET);
    const counting: ImageSource = {
      describe: (name) => catalogSource.describe(name),
      read: (name) => {
        reads.count++;
        return catalogSource.read(name);
      },
    };
    const images = await ImageCache.open(join(dir, 'images'), counting, { maxBytes: 2 ** 30 }, log);
    driver = await createLibvirtDriver({ uri: 'test:///default', domainType: 'auto', stopTimeoutSeconds: 1, vmDir: join(dir, 'vms') }, { hostId: 'burst', log, stateDir: dir, images });
  }, 60_000);
  afterAll(async () => {
    await driver?.close();
    await nc?.close();
    await nats?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('fetches the image once, gives each its own overlay and seed, and deleting them all leaves the image alone', async () => {
    const spec = (i: number) => parseWorkloadSpec({ name: `b${i}`, kind: 'vm', vcpus: 1, memory_mib: 64, image: `base@sha256:${digest}`, disk_gib: 1, cloud_init: { user_data: `#cloud-config\nindex: ${i}\n` } });
    const ids = Array.from({ length: BURST }, (_, i) => `b${i}-0000000${i % 10}`);
    const created = await Promise.all(ids.map((id, i) => driver.create(id, spec(i))));
    expect(created.every((w) => w.state === 'running')).toBe(true);
    expect(reads.count, 'one fetch for the whole burst').toBe(1);
    expect(readdirSync(join(dir, 'vms')).sort()).toEqual([...ids].sort());
    for (const id of ids) {
      expect(existsSync(join(dir, 'vms', id, 'root.qcow2'))).toBe(true);
      expect(existsSync(join(dir, 'vms', id, 'seed.iso'))).toBe(true);
    }
    // A repeat of every create (a retried command) makes nothing new.
    await Promise.all(ids.map((id, i) => driver.create(id, spec(i))));
    expect((await driver.list()).filter((w) => ids.includes(w.workloadId))).toHaveLength(BURST);

    await Promise.all(ids.map((id) => driver.delete(id)));
    expect(readdirSync(join(dir, 'vms'))).toEqual([]);
    expect((await driver.list()).filter((w) => ids.includes(w.workloadId))).toEqual([]);
    expect(sha256(readFileSync(join(dir, 'images', digest)))).toBe(digest);
  }, 120_000);
});
