import { describe, expect, it } from 'vitest';
import type { StoppedReservation } from '@virtfleet/shared';
import { holdsResources, isUnsettled, type Workload } from './workload.js';
import { testWorkload } from './workload.test-support.js';

function workload(state: Workload['state'], desiredState: Workload['desiredState'], specPolicy?: StoppedReservation): Workload {
  return testWorkload('w', { state, desiredState }, specPolicy ? { stopped_reservation: specPolicy } : {});
}

describe('holdsResources', () => {
  const cases: { name: string; w: Workload; cluster: StoppedReservation; holds: boolean }[] = [
    { name: 'running', w: workload('running', 'running'), cluster: 'release', holds: true },
    { name: 'stopped on purpose, cluster keeps', w: workload('stopped', 'stopped'), cluster: 'keep', holds: true },
    { name: 'stopped on purpose, cluster releases', w: workload('stopped', 'stopped'), cluster: 'release', holds: false },
    { name: 'stopped on purpose, spec keeps over a releasing cluster', w: workload('stopped', 'stopped', 'keep'), cluster: 'release', holds: true },
    { name: 'stopped on purpose, spec releases over a keeping cluster', w: workload('stopped', 'stopped', 'release'), cluster: 'keep', holds: false },
    { name: 'stopped by itself, to be restarted', w: workload('stopped', 'running', 'release'), cluster: 'release', holds: true },
    { name: 'failed', w: workload('failed', 'running'), cluster: 'keep', holds: false },
    { name: 'deleted', w: workload('deleted', 'deleted'), cluster: 'keep', holds: false },
    { name: 'not placed', w: { ...workload('pending', 'running'), hostId: '' }, cluster: 'keep', holds: false },
  ];
  it.each(cases)('$name: $holds', ({ w, cluster, holds }) => {
    expect(holdsResources(w, cluster)).toBe(holds);
  });
});

describe('isUnsettled', () => {
  const cases: { name: string; w: Workload; unsettled: boolean }[] = [
    { name: 'create sent, not answered', w: workload('creating', 'running'), unsettled: true },
    { name: 'delete accepted, not carried out', w: workload('running', 'deleted'), unsettled: true },
    { name: 'delete accepted on an unknown copy', w: workload('unknown', 'deleted'), unsettled: true },
    { name: 'running as desired', w: workload('running', 'running'), unsettled: false },
    { name: 'deleted', w: workload('deleted', 'deleted'), unsettled: false },
    { name: 'waiting in the queue', w: { ...workload('pending', 'running'), hostId: '' }, unsettled: false },
    { name: 'deleted before placement', w: { ...workload('pending', 'deleted'), hostId: '' }, unsettled: false },
  ];
  it.each(cases)('$name: $unsettled', ({ w, unsettled }) => {
    expect(isUnsettled(w)).toBe(unsettled);
  });
});
