import type { Driver, DriverContext, DriverFactory } from './driver.js';
import { createDockerDriver, DOCKER_DRIVER_NAME, type DockerDriverConfig } from './docker/docker-driver.js';
import { createFakeDriver, FAKE_DRIVER_NAME, type FakeDriverConfig } from './fake/fake-driver.js';
import { createLibvirtDriver, LIBVIRT_DRIVER_NAME, type LibvirtDriverConfig } from './libvirt/libvirt-driver.js';

/** Config sections by driver name; each driver reads only its own. */
export interface DriverConfigs {
  docker: DockerDriverConfig;
  libvirt: LibvirtDriverConfig;
  fake: FakeDriverConfig;
}
export type DriverName = keyof DriverConfigs;

/** Every driver the agent knows, by name. Adding a driver means one line here. */
const catalog: { [N in DriverName]: DriverFactory<DriverConfigs[N]> } = {
  [DOCKER_DRIVER_NAME]: createDockerDriver,
  [LIBVIRT_DRIVER_NAME]: createLibvirtDriver,
  [FAKE_DRIVER_NAME]: createFakeDriver,
} as const;

export const DRIVER_NAMES = Object.keys(catalog) as DriverName[];

export function createDriver<N extends DriverName>(name: N, config: DriverConfigs[N], context: DriverContext): Promise<Driver> {
  const factory = catalog[name] as DriverFactory<DriverConfigs[N]>;
  return factory(config, context);
}
