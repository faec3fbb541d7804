import { status, type handleUnaryCall, type ServerUnaryCall } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { createLogger, type CatalogImage, type pb } from '@virtfleet/shared';
import type { ImageCatalog } from './image-catalog.js';
import { imageHandlers } from './image-service.js';

const log = createLogger('test', 'silent');

/** Calls a unary handler as grpc-js would; a refusal rejects with its ServiceError. */
function call<Req, Res>(handler: handleUnaryCall<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => handler({ request } as ServerUnaryCall<Req, Res>, (err, res) => (err ? reject(err) : resolve(res!))));
}

const image: CatalogImage = { name: 'debian-12', kind: 'vm', format: 'qcow2', size: 1024, digest: `sha256:${'a'.repeat(64)}`, createdAt: '2026-01-01T00:00:00Z' };

function service() {
  const removed: string[] = [];
  const catalog = {
    remove: (name: string) => {
      removed.push(name);
      return Promise.resolve({ ...image, name });
    },
  } as unknown as ImageCatalog;
  return { api: imageHandlers(catalog, () => [], () => undefined, log), removed };
}

describe('DeleteImage', () => {
  // Found by the API fuzz: any name went to the catalog and came back NOT_FOUND, echoing it whole.
  it.each([
    { name: 'a path', value: '../../etc/passwd' },
    { name: 'shell metacharacters', value: 'img;rm -rf /' },
    { name: 'a Cyrillic look-alike', value: 'd\u0435bian-12' },
    { name: 'upper case', value: 'Debian-12' },
    { name: 'an empty name', value: '' },
    { name: 'a name far too long', value: 'x'.repeat(70_000) },
  ])('refuses $name with INVALID_ARGUMENT naming name, asking the catalog nothing', async ({ value }) => {
    const { api, removed } = service();
    await expect(call<pb.DeleteImageRequest__Output, pb.Image>(api.DeleteImage, { name: value, force: false })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^name: must be a lowercase letter or digit/) as string,
    });
    expect(removed).toEqual([]);
  });

  it('deletes an image by its name', async () => {
    const { api, removed } = service();
    expect((await call<pb.DeleteImageRequest__Output, pb.Image>(api.DeleteImage, { name: 'debian-12', force: false })).name).toBe('debian-12');
    expect(removed).toEqual(['debian-12']);
  });
});
