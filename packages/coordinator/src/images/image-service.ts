import { clientStream, FailedPreconditionError, IMAGE_NAME, IMAGE_NAME_RULE, InvalidArgumentError, unary, type CatalogImage, type Logger, type pb } from '@virtfleet/shared';
import type { ImageCatalog } from './image-catalog.js';

export type ImageHandlers = Pick<pb.CoordinatorHandlers, 'ImportImage' | 'ListImages' | 'DeleteImage'>;

export function toProtoImage(image: CatalogImage): pb.Image {
  return { name: image.name, kind: image.kind, format: image.format, size: String(image.size), digest: image.digest, created_at: image.createdAt };
}

/** Names of the workloads, not deleted, whose specs use a catalog image. */
export type ImageUsers = (imageName: string) => string[];

/** The image calls of virtfleet.v1.Coordinator, on the catalog. */
export function imageHandlers(catalog: ImageCatalog, usersOf: ImageUsers, requireLeader: () => void, log: Logger): ImageHandlers {
  return {
    ImportImage: clientStream<pb.ImportImageChunk__Output, pb.Image>(log, 'ImportImage', async (call) => {
      // Catalog changes go through the leader, so its guard against two imports of one name covers the cluster.
      requireLeader();
      const messages = call[Symbol.asyncIterator]() as AsyncIterator<pb.ImportImageChunk__Output>;
      const first = await messages.next();
      if (first.done || first.value.part !== 'header' || !first.value.header) throw new InvalidArgumentError('header', 'the first message of an import must be its header');
      const h = first.value.header;
      const size = Number(h.size);
      async function* data(): AsyncGenerator<Uint8Array> {
        for (let next = await messages.next(); !next.done; next = await messages.next()) {
          if (next.value.part !== 'data' || !next.value.data) throw new InvalidArgumentError('header', 'only the first message of an import is a header');
          yield next.value.data;
        }
      }
      return toProtoImage(await catalog.import({ name: h.name, format: h.format, size, sha256: h.sha256 }, data()));
    }),
    ListImages: unary<pb.ListImagesRequest__Output, pb.ListImagesResponse>(log, 'ListImages', async () => ({ images: (await catalog.list()).map(toProtoImage) })),
    DeleteImage: unary<pb.DeleteImageRequest__Output, pb.Image>(log, 'DeleteImage', async (req) => {
      if (!IMAGE_NAME.test(req.name)) throw new InvalidArgumentError('name', IMAGE_NAME_RULE);
      requireLeader();
      const users = usersOf(req.name);
      if (users.length > 0 && !req.force) {
        const shown = users.slice(0, 10).join(', ') + (users.length > 10 ? ` and ${users.length - 10} more` : '');
        throw new FailedPreconditionError(`image ${req.name} is used by ${users.length} workload${users.length === 1 ? '' : 's'} (${shown}); delete them first, or force it`);
      }
      return toProtoImage(await catalog.remove(req.name));
    }),
  };
}
