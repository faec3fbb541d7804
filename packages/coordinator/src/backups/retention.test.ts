import { describe, expect, it } from 'vitest';
import { isoWeekKey, planRetention, type RetentionRules } from './retention.js';

/** A backup named by its time, so a case reads as the list of times it keeps. */
const at = (created_at: string) => ({ id: `bk-${created_at}`, created_at });
const rules = (r: Partial<RetentionRules>): RetentionRules => ({ keep_last: 0, keep_daily: 0, keep_weekly: 0, ...r });

// 2026-03-02 is a Monday: ISO week 2026-W10 runs from it to Sunday 2026-03-08.
const backups = [
  '2026-03-09T01:00:00Z', // Mon, W11
  '2026-03-08T23:00:00Z', // Sun, W10
  '2026-03-08T12:00:00Z', // Sun, W10
  '2026-03-07T08:00:00Z', // Sat, W10
  '2026-03-05T10:00:00Z', // Thu, W10
  '2026-03-05T09:00:00Z', // Thu, W10
  '2026-02-25T10:00:00Z', // Wed, W09
  '2026-02-10T10:00:00Z', // Tue, W07 (no backup in W08)
].map(at);

describe('planRetention', () => {
  const cases: { name: string; rules: RetentionRules; keep: string[] }[] = [
    { name: 'keep_last 1 keeps the newest', rules: rules({ keep_last: 1 }), keep: ['2026-03-09T01:00:00Z'] },
    { name: 'keep_last 3 keeps the three newest', rules: rules({ keep_last: 3 }), keep: ['2026-03-09T01:00:00Z', '2026-03-08T23:00:00Z', '2026-03-08T12:00:00Z'] },
    { name: 'keep_last above the count keeps all', rules: rules({ keep_last: 100 }), keep: backups.map((b) => b.created_at) },
    {
      name: 'keep_daily 3 keeps the newest of each of the last three days with backups',
      rules: rules({ keep_daily: 3 }),
      keep: ['2026-03-09T01:00:00Z', '2026-03-08T23:00:00Z', '2026-03-07T08:00:00Z'],
    },
    {
      name: 'keep_daily skips days without backups',
      rules: rules({ keep_daily: 5 }),
      keep: ['2026-03-09T01:00:00Z', '2026-03-08T23:00:00Z', '2026-03-07T08:00:00Z', '2026-03-05T10:00:00Z', '2026-02-25T10:00:00Z'],
    },
    {
      name: 'keep_weekly 3 keeps the newest of each of the last three ISO weeks with backups',
      rules: rules({ keep_weekly: 3 }),
      keep: ['2026-03-09T01:00:00Z', '2026-03-08T23:00:00Z', '2026-02-25T10:00:00Z'],
    },
    {
      name: 'keep_weekly skips weeks without backups',
      rules: rules({ keep_weekly: 4 }),
      keep: ['2026-03-09T01:00:00Z', '2026-03-08T23:00:00Z', '2026-02-25T10:00:00Z', '2026-02-10T10:00:00Z'],
    },
    {
      name: 'the rules together keep the union',
      rules: rules({ keep_last: 2, keep_daily: 3, keep_weekly: 4 }),
      keep: ['2026-03-09T01:00:00Z', '2026-03-08T23:00:00Z', '2026-03-07T08:00:00Z', '2026-02-25T10:00:00Z', '2026-02-10T10:00:00Z'],
    },
    { name: 'no rule keeps nothing', rules: rules({}), keep: [] },
  ];
  it.each(cases)('$name', ({ rules: r, keep }) => {
    const plan = planRetention(backups, r);
    expect(plan.keep.map((b) => b.created_at)).toEqual(keep);
    expect(plan.prune.map((b) => b.created_at), 'pruned: every other backup, newest first').toEqual(backups.map((b) => b.created_at).filter((t) => !keep.includes(t)));
  });

  it('does not depend on the order given', () => {
    const shuffled = [backups[4], backups[0], backups[7], backups[2], backups[1], backups[6], backups[3], backups[5]].filter((b) => b !== undefined);
    expect(planRetention(shuffled, rules({ keep_last: 2, keep_daily: 3 }))).toEqual(planRetention(backups, rules({ keep_last: 2, keep_daily: 3 })));
  });

  it('uses UTC days: 23:30 at UTC-5 is the next UTC day', () => {
    const plan = planRetention([at('2026-03-01T23:30:00-05:00'), at('2026-03-02T01:00:00Z')], rules({ keep_daily: 1 }));
    expect(plan.keep.map((b) => b.created_at), 'both fall on 2026-03-02 UTC; the later one stays').toEqual(['2026-03-01T23:30:00-05:00']);
  });

  it('keeps a backup whose time cannot be read', () => {
    const plan = planRetention([at('2026-03-01T00:00:00Z'), { id: 'bk-odd', created_at: 'yesterday' }, at('2026-03-02T00:00:00Z')], rules({ keep_last: 1 }));
    expect(plan.keep.map((b) => b.id)).toEqual(['bk-2026-03-02T00:00:00Z', 'bk-odd']);
    expect(plan.prune.map((b) => b.id)).toEqual(['bk-2026-03-01T00:00:00Z']);
  });

  it('breaks ties of one instant by id, newest id first', () => {
    const plan = planRetention([{ id: 'bk-a', created_at: '2026-03-01T00:00:00Z' }, { id: 'bk-b', created_at: '2026-03-01T00:00:00Z' }], rules({ keep_last: 1 }));
    expect(plan.keep.map((b) => b.id)).toEqual(['bk-b']);
  });
});

describe('isoWeekKey', () => {
  it.each([
    { time: '2026-03-02T00:00:00Z', want: '2026-W10' },
    { time: '2026-03-08T23:59:59Z', want: '2026-W10' },
    { time: '2026-03-09T00:00:00Z', want: '2026-W11' },
    { time: '2021-01-03T12:00:00Z', want: '2020-W53' },
    { time: '2024-12-30T12:00:00Z', want: '2025-W01' },
    { time: '2026-01-01T00:00:00Z', want: '2026-W01' },
  ])('puts $time in $want', ({ time, want }) => {
    expect(isoWeekKey(Date.parse(time))).toBe(want);
  });
});
