import { describe, expect, it } from 'vitest';
import { createLogger, EVENT_TYPES } from '@virtfleet/shared';
import { EventBus } from './event-bus.js';

describe('EventBus', () => {
  it('numbers events, replays from a sequence and keeps only the newest', () => {
    const bus = new EventBus('test', createLogger('test', 'silent'), 3);
    const seen: number[] = [];
    const unsubscribe = bus.subscribe((e) => seen.push(e.sequence ?? -1));
    for (let i = 0; i < 5; i++) bus.emit(EVENT_TYPES.hostUp, `h${i}`, { i });
    unsubscribe();
    bus.emit(EVENT_TYPES.hostDown, 'h9', {});
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(bus.replay({}).map((e) => e.sequence)).toEqual([4, 5, 6]);
    expect(bus.replay({ sinceSeq: 5 }).map((e) => e.subject)).toEqual(['h4', 'h9']);
    expect(bus.replay({ sinceTimeMs: Date.now() + 60_000 })).toEqual([]);
  });

  it('produces CloudEvents', () => {
    const bus = new EventBus('virtfleet/coordinator/c1', createLogger('test', 'silent'));
    const e = bus.emit(EVENT_TYPES.workloadPlaced, 'w1', { host_id: 'h1' });
    expect(e).toMatchObject({ specversion: '1.0', source: 'virtfleet/coordinator/c1', type: 'io.virtfleet.workload.placed', subject: 'w1', datacontenttype: 'application/json', data: { host_id: 'h1' } });
    expect(Date.parse(e.time)).not.toBeNaN();
    expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
