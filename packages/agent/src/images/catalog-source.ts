import { Objm, type ObjectStore } from '@nats-io/obj';
import { imageFromObject, NotFoundError, type NatsConnection } from '@virtfleet/shared';
import type { ImageDescription, ImageSource } from './image-cache.js';

/**
 * The coordinator's image catalog, read straight from its JetStream object
 * store. The bucket is opened on first use, so an agent may start before
 * the coordinator has created it. The object store checks each object's
 * digest as it is read; the cache checks it again on its own.
 */
export class CatalogImageSource implements ImageSource {
  private store: Promise<ObjectStore> | undefined;

  constructor(
    /** The connection, once there is one: an agent opens its image cache before it connects. */
    private readonly connection: () => Promise<NatsConnection>,
    private readonly bucket: string,
  ) {}

  async describe(name: string): Promise<ImageDescription | undefined> {
    const info = await (await this.open()).info(name);
    return info ? imageFromObject(info) : undefined;
  }

  async read(name: string): Promise<AsyncIterable<Uint8Array>> {
    const result = await (await this.open()).get(name);
    if (!result) throw new NotFoundError('image', name);
    return (async function* () {
      yield* result.data;
      const failed = await result.error;
      if (failed) throw failed;
    })();
  }

  private open(): Promise<ObjectStore> {
    this.store ??= this.connection().then((nc) => new Objm(nc).open(this.bucket)).catch((err: unknown) => {
      this.store = undefined;
      throw err;
    });
    return this.store;
  }
}
