import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import { age, print, table } from '../output.js';
import { withApi } from './operator.js';

const KINDS = ['vm', 'container'] as const;
const FORMATS = ['qcow2', 'raw', 'docker-archive'] as const;
const KIND_OF: Record<(typeof FORMATS)[number], (typeof KINDS)[number]> = { qcow2: 'vm', raw: 'vm', 'docker-archive': 'container' };

/** The format a file's first bytes show: a qcow2 magic, a tar header, or else a raw disk. */
async function detectFormat(file: string): Promise<(typeof FORMATS)[number]> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    const bytes = head.subarray(0, bytesRead);
    if (bytes.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
    if (bytes.subarray(257, 262).toString('latin1') === 'ustar') return 'docker-archive';
    return 'raw';
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
    .description('add an image: a qcow2 or raw disk image (vm) or a `docker save` archive (container)')
    .argument('<file>', 'the image file')
    .requiredOption('--name <name>', 'catalog name: a lowercase letter or digit, then lowercase letters, digits, ".", "_" or "-"')
    .option('--kind <kind>', 'vm or container (default: from the file)')
    .option('--format <format>', 'qcow2, raw or docker-archive (default: from the file)')
    .action(async (file: string, opts: { name: string; kind?: string; format?: string }, cmd: Command) => {
      if (opts.kind !== undefined && !KINDS.some((k) => k === opts.kind)) throw new InvalidArgumentError('--kind', `must be one of ${KINDS.join(', ')}`);
      if (opts.format !== undefined && !FORMATS.some((f) => f === opts.format)) throw new InvalidArgumentError('--format', `must be one of ${FORMATS.join(', ')}`);
      const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
        throw new InvalidArgumentError('<file>', `${file}: cannot read it (${err.code ?? err.message})`);
      });
      if (!info.isFile()) throw new InvalidArgumentError('<file>', `${file}: not a regular file`);
      const format = (opts.format as (typeof FORMATS)[number] | undefined) ?? (await detectFormat(file));
      if (opts.kind !== undefined && KIND_OF[format] !== opts.kind)
        throw new InvalidArgumentError('--kind', `${file} is a ${format} image, which is for a ${KIND_OF[format]}, not a ${opts.kind}`);
      const sha256 = await sha256Of(file);
      await withApi(cmd, async (client, output) => {
        const stored = await client.importImage({ name: opts.name, format, size: String(info.size), sha256 }, createReadStream(file, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>);
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
    .action(async (name: string, _opts: unknown, cmd: Command) =>
      withApi(cmd, async (client, output) => {
        const removed = await client.deleteImage(name);
        print(output, removed, () => `deleted ${removed.name} (${removed.digest})`);
      }),
    );
}
