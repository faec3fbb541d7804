import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { TEST_IMAGE } from '../support/workloads.js';

const run = promisify(execFile);
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface ImageJson {
  name: string;
  kind: string;
  format: string;
  size: string;
  digest: string;
}

describe('virtfleet image: the catalog through the CLI, on a real coordinator and nats-server', () => {
  let cluster: TestCluster;
  let dir: string;
  let qcow2: string;
  let archive: string;
  let big: string;
  const cli = (...args: string[]) => cluster.cli(...args);

  beforeAll(async () => {
    cluster = await startCluster({ agents: [] });
    dir = mkdtempSync(join(tmpdir(), 'vf-images-'));
    qcow2 = join(dir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '1G']);
    big = join(dir, 'big.raw');
    await run('truncate', ['-s', '256M', big]);
    archive = join(dir, 'busybox.tar');
    await run('docker', ['save', '-o', archive, TEST_IMAGE]);
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('imports a qcow2 disk and a docker save archive, each with its kind, format and digest, and lists them', async () => {
    const vm = await cli('image', 'import', qcow2, '--name', 'disk-1', '-o', 'json');
    expect(vm.code, vm.stderr).toBe(0);
    expect(JSON.parse(vm.stdout) as ImageJson).toMatchObject({ name: 'disk-1', kind: 'vm', format: 'qcow2', digest: `sha256:${sha256(qcow2)}` });
    const container = await cli('image', 'import', archive, '--name', 'busybox', '--kind', 'container', '-o', 'json');
    expect(container.code, container.stderr).toBe(0);
    expect(JSON.parse(container.stdout) as ImageJson).toMatchObject({ name: 'busybox', kind: 'container', format: 'docker-archive', digest: `sha256:${sha256(archive)}` });
    const ls = await cli('image', 'ls', '-o', 'json');
    expect((JSON.parse(ls.stdout) as ImageJson[]).map((i) => [i.name, i.kind, i.size])).toEqual([
      ['busybox', 'container', String(readFileSync(archive).length)],
      ['disk-1', 'vm', String(readFileSync(qcow2).length)],
    ]);
    const table = await cli('image', 'ls');
    expect(table.stdout).toMatch(/disk-1\s+vm\s+qcow2/);
    // The same file again is a repeat, not a conflict.
    expect((await cli('image', 'import', qcow2, '--name', 'disk-1')).code).toBe(0);
  }, 120_000);

  it.each([
    { name: 'a name with a path', args: () => ['image', 'import', qcow2, '--name', '../x'], code: 2, stderr: /header\.name/ },
    { name: 'a kind the file is not', args: () => ['image', 'import', qcow2, '--name', 'x1', '--kind', 'container'], code: 2, stderr: /qcow2 image, which is for a vm, not a container/ },
    { name: 'a format the content is not', args: () => ['image', 'import', archive, '--name', 'x2', '--format', 'qcow2'], code: 2, stderr: /not a qcow2 image/ },
    { name: 'a large file refused at its first bytes (the CLI stops sending)', args: () => ['image', 'import', big, '--name', 'x4', '--format', 'qcow2'], code: 2, stderr: /not a qcow2 image/ },
    { name: 'a missing file', args: () => ['image', 'import', join(dir, 'nope.qcow2'), '--name', 'x3'], code: 2, stderr: /nope\.qcow2: cannot read it \(ENOENT\)/ },
    { name: 'other content under a taken name', args: () => ['image', 'import', archive, '--name', 'disk-1'], code: 5, stderr: /disk-1 exists/ },
    { name: 'deleting an unknown image', args: () => ['image', 'rm', 'nothing-here'], code: 3, stderr: /nothing-here/ },
  ])('refuses $name with exit $code and changes nothing', async ({ args, code, stderr }) => {
    const before = (await cli('image', 'ls', '-o', 'json')).stdout;
    const r = await cli(...args());
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(stderr);
    expect((await cli('image', 'ls', '-o', 'json')).stdout).toBe(before);
  });

  it('deletes an image', async () => {
    const r = await cli('image', 'rm', 'busybox');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/deleted busybox \(sha256:/);
    expect((JSON.parse((await cli('image', 'ls', '-o', 'json')).stdout) as ImageJson[]).map((i) => i.name)).toEqual(['disk-1']);
  });

  it('a file that is not a regular file is refused before anything is sent', async () => {
    const r = await cli('image', 'import', dir, '--name', 'd1');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a regular file/);
  });
});
