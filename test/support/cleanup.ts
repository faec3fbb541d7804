import type { Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Removes every container the given hosts' agents created, whatever state the test left them in. */
export async function removeContainersOf(hostIds: readonly string[]): Promise<void> {
  for (const hostId of hostIds) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.host=${hostId}`] } })) {
      await docker.getContainer(c.Id).remove({ force: true });
    }
  }
}

/** Destroys and undefines the named domains, ignoring ones already gone. */
export async function removeDomains(hypervisor: Hypervisor, names: readonly string[]): Promise<void> {
  for (const name of names) {
    const domain = await hypervisor.domainLookupByName(name).catch(() => undefined);
    if (!domain) continue;
    await hypervisor.domainDestroy(domain).catch(() => undefined);
    await hypervisor.domainUndefine(domain).catch(() => undefined);
  }
}
