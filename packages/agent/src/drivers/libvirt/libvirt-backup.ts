import { setTimeout as delay } from 'node:timers/promises';
import { InternalError, errorMessage } from '@virtfleet/shared';
import { parseDomainJobStats, type LibvirtExt } from './native-ext.js';

/** How often a backup job is looked at until it ends. */
const POLL_MS = 250;

/**
 * Runs a push-mode backup job (libvirt writes the disks `backupXml` names,
 * as they are at the job's start, while the domain runs) and resolves once
 * it has completed. libvirt runs one job per domain at a time: a migration or
 * another backup under way makes it fail at once.
 * @throws InternalError when the job fails or is cancelled
 */
export async function runPushBackup(ext: LibvirtExt, uri: string, domainName: string, backupXml: string): Promise<void> {
  try {
    await ext.backupBegin(uri, domainName, backupXml);
  } catch (err) {
    throw new InternalError(`libvirt did not start a backup of ${domainName}: ${errorMessage(err)}`, { cause: err });
  }
  for (;;) {
    await delay(POLL_MS);
    const current = await ext.domainJobStats(uri, domainName).then(parseDomainJobStats, () => undefined);
    if (current?.type === 'bounded' || current?.type === 'unbounded') continue;
    const last = parseDomainJobStats(await ext.completedJobStats(uri, domainName));
    if (last.type === 'completed') return;
    throw new InternalError(`the backup job of ${domainName} ended ${last.type}`);
  }
}
