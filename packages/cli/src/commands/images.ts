import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { FORMAT_PROBE_BYTES, formatOfHead, IMAGE_FORMATS, InvalidArgumentError, KIND_OF_FORMAT, WORKLOAD_KINDS, type ImageFormat, type pb } from '@virtfleet/shared';
import { age, forPeople, print, table } from '../output.js';
import { bar, progressFor, type ProgressLine } from '../progress.js';
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

async function sha256Of(file: string, onBytes?: (n: number) => void): Promise<string> {
  const hash = createHash('sha256');
  const chunks = createReadStream(file) as AsyncIterable<Buffer>;
  for await (const chunk of onBytes ? counted(chunks, onBytes) : chunks) hash.update(chunk);
  return hash.digest('hex');
}

/** Yields `source`'s chunks, telling `onBytes` how many bytes have gone by so far. */
export async function* counted(source: AsyncIterable<Buffer>, onBytes: (total: number) => void): AsyncIterable<Buffer> {
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    onBytes(total);
    yield chunk;
  }
}

/**
 * What `image import` shows on a terminal while it reads the file (`what`:
 * checking, then sending): redrawn only when the whole percentage changes.
 */
export function byteProgress(progress: ProgressLine, what: string, size: number): (done: number) => void {
  let shown = -1;
  return (done) => {
    const percent = size > 0 ? Math.floor((100 * done) / size) : 100;
    if (percent === shown) return;
    shown = percent;
    progress.draw(`${bar(size > 0 ? done / size : 1)} ${what}: ${sizeText(done)} of ${sizeText(size)}`);
  };
}

const sizeText = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)}Gi` : `${(bytes / 2 ** 20).toFixed(1)}Mi`);

/** `image ls`; wide shows the whole digest and the exact size and time. */
function imageRows(images: pb.Image__Output[], wide = false): string {
  return table(
    ['name', 'kind', 'format', 'size', 'digest', 'age', ...(wide ? ['bytes', 'created'] : [])],
    images.map((i) => [i.name, i.kind, i.format, sizeText(Number(i.size)), wide ? i.digest : i.digest.slice(0, 'sha256:'.length + 12), age(i.created_at), ...(wide ? [String(i.size), i.created_at] : [])]),
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
      await withApi(cmd, async (client, output) => {
        // A terminal gets a bar while the file is read twice: for its digest, then to send it.
        const progress = progressFor(process.stdout, forPeople(output));
        const sha256 = await sha256Of(file, progress && byteProgress(progress, `checking ${file}`, info.size));
        const data = () => createReadStream(file, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>;
        const stored = await client
          .importImage({ name: opts.name, format, size: String(info.size), sha256 }, progress ? () => counted(data(), byteProgress(progress, `importing ${opts.name}`, info.size)) : data)
          .finally(() => progress?.clear());
        print(output, stored, () => `imported ${stored.name}: ${stored.kind} ${stored.format}, ${sizeText(Number(stored.size))}, ${stored.digest}`);
      });
    });
  image
    .command('ls')
    .description('list the catalog, by name')
    .action(async (_opts: unknown, cmd: Command) =>
      withApi(cmd, async (client, output) => {
        const { images } = await client.listImages();
        print(output, images, (wide) => imageRows(images, wide));
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
