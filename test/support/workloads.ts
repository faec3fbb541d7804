import type { CoordinatorApi } from '@virtfleet/cli';
import type { pb } from '@virtfleet/shared';

/** The image every e2e container runs; built locally by the test setup. */
export const TEST_IMAGE = 'virtfleet-test/busybox:latest';

/** A small container that sleeps, the tests' usual workload. */
export function sleeperContainer(name: string, extra: Partial<pb.WorkloadSpec> = {}): pb.WorkloadSpec {
  return { name, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '100000'], ...extra };
}

export interface RetainedEvent {
  type: string;
  subject: string;
  time: string;
  sequence: number;
  data: Record<string, unknown>;
}

/** Every event the coordinator's log retains, oldest first. */
export function retainedEvents(api: CoordinatorApi): Promise<RetainedEvent[]> {
  return new Promise((resolve, reject) => {
    const out: RetainedEvent[] = [];
    const stream = api.watch({ from_start: true, follow: false });
    stream.on('data', (e: pb.Event__Output) =>
      out.push({ type: e.type, subject: e.subject, time: e.time, sequence: Number(e.sequence), data: JSON.parse(e.data || '{}') as Record<string, unknown> }),
    );
    stream.on('error', reject);
    stream.on('end', () => resolve(out.sort((a, b) => a.sequence - b.sequence)));
  });
}
