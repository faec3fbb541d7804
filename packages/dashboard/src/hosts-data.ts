import { call } from './api.js';
import type { UsageSeries } from './components.js';
import { usePoll, type Polled } from './hooks.js';
import type { Host, VfEvent } from './types.js';

/** Points kept per host: ten minutes at one read every 2 s. */
const HISTORY_POINTS = 300;
export const HOSTS_POLL_MS = 2000;

/** Each host's CPU and memory history, kept across page changes while the tab lives. */
const history = new Map<string, UsageSeries>();
let historyVersion = 0;

function record(hosts: Host[]): void {
  const t = Date.now() / 1000;
  for (const h of hosts) {
    const s = history.get(h.id) ?? { t: [], cpu: [], mem: [] };
    history.set(h.id, s);
    const usage = h.status === 'up' ? h.usage : null;
    s.t.push(t);
    s.cpu.push(usage ? usage.cpu_utilisation * 100 : null);
    s.mem.push(usage && usage.memory_total_mib > 0 ? (usage.memory_used_mib / usage.memory_total_mib) * 100 : null);
    if (s.t.length > HISTORY_POINTS) for (const a of [s.t, s.cpu, s.mem]) a.splice(0, a.length - HISTORY_POINTS);
  }
  historyVersion++;
}

export const usageOf = (hostId: string): UsageSeries => history.get(hostId) ?? { t: [], cpu: [], mem: [] };
export const usageVersion = (): number => historyVersion;

const isHostEvent = (e: VfEvent): boolean => e.type.startsWith('io.virtfleet.host.') || e.type === 'io.virtfleet.workload.placed' || e.type === 'io.virtfleet.workload.deleted';

async function listHosts(): Promise<Host[]> {
  const hosts: Host[] = [];
  let page_token = '';
  do {
    const page = await call<{ hosts: Host[]; next_page_token: string }>('ListHosts', { page_token });
    hosts.push(...page.hosts);
    page_token = page.next_page_token;
  } while (page_token);
  return hosts;
}

/** Every host, read every 2 s and after each host event; each read adds a point to the usage history. */
export function useHosts(): Polled<Host[]> {
  return usePoll(
    async () => {
      const hosts = await listHosts();
      record(hosts);
      return hosts;
    },
    HOSTS_POLL_MS,
    [],
    isHostEvent,
  );
}
