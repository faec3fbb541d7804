import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { FORMAT_PROBE_BYTES, formatOfHead, IMAGE_FORMATS, InvalidArgumentError, KIND_OF_FORMAT, WORKLOAD_KINDS, type ImageFormat, type pb } from '@virtfleet/shared';
import { age, print, table } from '../output.js';
import { withApi } from './operator.js';

/** The format a file's first bytes show. */
async function detectFormat(file: string): Promise<ImageFormat> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(FORMAT_PROBE_BYTES);
    const { bytesRead } = await handle.read(head, 0, FORMAT_PROBE_BYTES, 0);
    return formatOfHead(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sizeText = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)}Gi` : `${(bytes / 2 ** 20).toFixed(1)}Mi`);

function imageRows(images: pb.Image__Output[]): string {
  return table(
    ['name', 'kind', 'format', 'size', 'digest', 'age'],
    images.map((i) => [i.name, i.kind, i.format, sizeText(Number(i.size)), i.digest.slice(0, 'sha256:'.length + 12), age(i.created_at)]),
  );
}

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('the image catalog: VM disk images and container images, which hosts fetch on first use');
  image
    .command('import')
    .description('add an image: a qcow2 or raw disk image, a kernel or initrd (vm), or a `docker save` archive (container)')
    .argument('<file>', 'the image file')
    .requiredOption('--name <name>', 'catalog name: a lowercase letter or digit, then lowercase letters, digits, ".", "_" or "-"')
    .option('--kind <kind>', 'vm or container (default: from the file)')
    .option('--format <format>', 'qcow2, raw, kernel, initrd or docker-archive (default: from the file)')
    .action(async (file: string, opts: { name: string; kind?: string; format?: string }, cmd: Command) => {
      if (opts.kind !== undefined && !WORKLOAD_KINDS.some((k) => k === opts.kind)) throw new InvalidArgumentError('--kind', `must be one of ${WORKLOAD_KINDS.join(', ')}`);
      if (opts.format !== undefined && !IMAGE_FORMATS.some((f) => f === opts.format)) throw new InvalidArgumentError('--format', `must be one of ${IMAGE_FORMATS.join(', ')}`);
      const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
        throw new InvalidArgumentError('<file>', `${file}: cannot read it (${err.code ?? err.message})`);
      });
      if (!info.isFile()) throw new InvalidArgumentError('<file>', `${file}: not a regular file`);
      const format = (opts.format as ImageFormat | undefined) ?? (await detectFormat(file));
      if (opts.kind !== undefined && KIND_OF_FORMAT[format] !== opts.kind)
        throw new InvalidArgumentError('--kind', `${file} is a ${format} image, which is for a ${KIND_OF_FORMAT[format]}, not a ${opts.kind}`);
      const sha256 = await sha256Of(file);
      await withApi(cmd, async (client, output) => {
        const stored = await client.importImage({ name: opts.name, format, size: String(info.size), sha256 }, () => createReadStream(file, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>);
        print(output, stored, () => `imported ${stored.name}: ${stored.kind} ${stored.format}, ${sizeText(Number(stored.size))}, ${stored.digest}`);
      });
    });
  image
    .command('ls')
    .description('list the catalog, by name')
    .action(async (_opts: unknown, cmd: Command) =>
      withApi(cmd, async (client, output) => {
        const { images } = await client.listImages();
        print(output, images, () => imageRows(images));
      }),
    );
  image
    .command('rm')
    .description('delete an image from the catalog')
    .argument('<name>', 'catalog name')
    .option('--force', 'delete it although workloads use it (they cannot then move to a host without a copy)')
    .action(async (name: string, opts: { force?: boolean }, cmd: Command) =>
      withApi(cmd, async (client, output) => {
        const removed = await client.deleteImage(name, opts.force ?? false);
        print(output, removed, () => `deleted ${removed.name} (${removed.digest})`);
      }),
    );
}
