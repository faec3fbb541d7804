import { catalogRefsOf, DISK_FORMATS, formatCatalogRef, InvalidArgumentError, parseCatalogRef, type CatalogImage, type ImageFormat, type WorkloadSpec } from '@virtfleet/shared';

/** Where pinning looks images up: the catalog, in production. */
export interface ImageLookup {
  /** The image the catalog holds under `name` now, or undefined. */
  get(name: string): Promise<CatalogImage | undefined>;
}

type RefField = ReturnType<typeof catalogRefsOf>[number]['field'];

const WANTED_FORMATS: Record<RefField, readonly ImageFormat[]> = {
  image: DISK_FORMATS,
  'boot.kernel': ['kernel'],
  'boot.initrd': ['initrd'],
};

/**
 * Pins each catalog image a spec names to the content the catalog holds now
 * (`NAME` becomes `NAME@sha256:<hex>`), so every host that ever runs the
 * workload, after a reschedule as much as at first, runs the same bytes.
 * A VM's root disk, kernel and initrd must be in the catalog, in the format
 * their field needs; a container's image is pinned when the catalog holds a
 * container image of that name, and otherwise left to the hosts' Docker Engines.
 * @throws InvalidArgumentError naming the field: an unknown image, one of the
 *   wrong kind or format, or a pin the catalog's content no longer matches.
 */
export async function pinCatalogImages(spec: WorkloadSpec, catalog: ImageLookup): Promise<WorkloadSpec> {
  const refs = catalogRefsOf(spec);
  if (refs.length === 0) return spec;
  const pinned = new Map<RefField, string>();
  await Promise.all(
    refs.map(async ({ field, ref }) => {
      const wanted = parseCatalogRef(ref)!;
      const image = await catalog.get(wanted.name);
      const fieldName = `spec.${field}`;
      if (spec.kind === 'container') {
        if (image?.kind !== 'container') return; // a Docker reference; the host's engine must have it
      } else {
        if (!image) throw new InvalidArgumentError(fieldName, `no image named ${JSON.stringify(wanted.name)} in the catalog (virtfleet image ls lists them; virtfleet image import adds one)`);
        if (!WANTED_FORMATS[field].includes(image.format))
          throw new InvalidArgumentError(fieldName, `image ${wanted.name} is ${image.format}; this field takes ${WANTED_FORMATS[field].join(' or ')}`);
      }
      if (wanted.digest && wanted.digest !== image.digest)
        throw new InvalidArgumentError(fieldName, `image ${wanted.name} holds ${image.digest} now, not the pinned ${wanted.digest}`);
      pinned.set(field, formatCatalogRef({ name: image.name, digest: image.digest }));
    }),
  );
  if (pinned.size === 0) return spec;
  const image = pinned.get('image');
  const kernel = pinned.get('boot.kernel');
  const initrd = pinned.get('boot.initrd');
  return {
    ...spec,
    ...(image ? { image } : {}),
    ...(spec.boot ? { boot: { ...spec.boot, ...(kernel ? { kernel } : {}), ...(initrd ? { initrd } : {}) } } : {}),
  };
}

/** Names of the workloads (not deleted) whose specs use the catalog image `name`. */
export function imageUsers(workloads: readonly { state: string; spec: WorkloadSpec }[], name: string): string[] {
  return workloads.filter((w) => w.state !== 'deleted' && catalogRefsOf(w.spec).some((r) => parseCatalogRef(r.ref)?.name === name)).map((w) => w.spec.name);
}
