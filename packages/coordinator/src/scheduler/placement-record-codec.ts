import { z } from 'zod';
import type { CandidateRecord, FilterStatus, FilterVerdict, PlacementRecord, ScoreDetail } from './scheduler.js';

/**
 * The stored form of a placement record. Every candidate repeats the same
 * filter and scorer names; written out in full a record for 16 candidates
 * is about 12 KiB, and one is stored per workload. Here the names (and the
 * scorers' weights) are listed once per record, a candidate's verdicts are
 * one letter per filter, and its scores a list of numbers: about an eighth
 * of the size. Decoding gives back exactly the record that was encoded; a
 * candidate whose filters or scorers differ from the record's lists keeps
 * its own full list.
 */
const FORMAT_VERSION = 2;

const STATUS_LETTER: Record<FilterStatus, string> = { ok: 'o', unschedulable: 'u', unresolvable: 'x' };
const LETTER_STATUS: Record<string, FilterStatus> = { o: 'ok', u: 'unschedulable', x: 'unresolvable' };

const filterVerdictSchema = z.object({ plugin: z.string(), status: z.enum(['ok', 'unschedulable', 'unresolvable']), reason: z.string().optional() });
const scoreDetailSchema = z.object({ plugin: z.string(), score: z.number(), weight: z.number() });

const storedCandidateSchema = z.object({
  /** hostId */
  h: z.string(),
  /** total */
  t: z.number(),
  /** Present (1) when the host was rejected. */
  x: z.literal(1).optional(),
  /** One status letter per filter of the record's list, or the candidate's own verdicts. */
  f: z.union([z.string().regex(/^[oux]*$/), z.array(filterVerdictSchema)]),
  /** Reasons of the verdicts given as letters, by position. */
  r: z.record(z.string().regex(/^\d+$/), z.string()).optional(),
  /** One score per scorer of the record's list, or the candidate's own scores. */
  s: z.union([z.array(z.number()), z.array(scoreDetailSchema)]),
});

const storedRecordSchema = z
  .object({
    v: z.literal(FORMAT_VERSION),
    filterPlugins: z.array(z.string()),
    scorers: z.array(z.tuple([z.string(), z.number()])),
    candidates: z.array(storedCandidateSchema),
  })
  .passthrough();

type StoredCandidate = z.infer<typeof storedCandidateSchema>;

const samePlugins = (a: readonly { plugin: string }[], names: readonly string[]) => a.length === names.length && a.every((v, i) => v.plugin === names[i]);

function encodeCandidate(c: CandidateRecord, filterPlugins: readonly string[], scorers: readonly (readonly [string, number])[]): StoredCandidate {
  const stored: StoredCandidate = { h: c.hostId, t: c.total, f: [...c.filters], s: c.scores };
  if (!c.feasible) stored.x = 1;
  if (samePlugins(c.filters, filterPlugins)) {
    stored.f = c.filters.map((v) => STATUS_LETTER[v.status]).join('');
    const reasons: Record<string, string> = {};
    c.filters.forEach((v, i) => {
      if (v.reason !== undefined) reasons[i] = v.reason;
    });
    if (Object.keys(reasons).length > 0) stored.r = reasons;
  }
  if (c.scores.length === scorers.length && c.scores.every((s, i) => s.plugin === scorers[i]![0] && s.weight === scorers[i]![1])) stored.s = c.scores.map((s) => s.score);
  return stored;
}

/** A placement record (with any fields added beside it, such as the queue policy) in its stored form, ready for JSON. */
export function encodePlacementRecord<T extends PlacementRecord>(record: T): object {
  const filterPlugins = record.candidates[0]?.filters.map((v) => v.plugin) ?? [];
  const scorers = (record.candidates.find((c) => c.scores.length > 0)?.scores ?? []).map((s) => [s.plugin, s.weight] as const);
  return { ...record, v: FORMAT_VERSION, filterPlugins, scorers, candidates: record.candidates.map((c) => encodeCandidate(c, filterPlugins, scorers)) };
}

function decodeCandidate(c: StoredCandidate, filterPlugins: readonly string[], scorers: readonly [string, number][], field: string): CandidateRecord {
  let filters: FilterVerdict[];
  if (typeof c.f === 'string') {
    if (c.f.length !== filterPlugins.length) throw new Error(`${field}.f: ${c.f.length} verdicts for ${filterPlugins.length} filters`);
    filters = [...c.f].map((letter, i) => {
      const reason = c.r?.[i];
      const verdict: FilterVerdict = { plugin: filterPlugins[i]!, status: LETTER_STATUS[letter]! };
      if (reason !== undefined) verdict.reason = reason;
      return verdict;
    });
  } else filters = c.f;
  let scores: ScoreDetail[];
  if (c.s.length > 0 && typeof c.s[0] === 'number') {
    const numbers = c.s as number[];
    if (numbers.length !== scorers.length) throw new Error(`${field}.s: ${numbers.length} scores for ${scorers.length} scorers`);
    scores = numbers.map((score, i) => ({ plugin: scorers[i]![0], score, weight: scorers[i]![1] }));
  } else scores = c.s as ScoreDetail[];
  return { hostId: c.h, feasible: c.x === undefined, filters, scores, total: c.t };
}

/**
 * The record `encodePlacementRecord` stored. Records stored in full (before
 * this format) are returned as they are.
 * @throws Error naming the field when the stored form is malformed
 */
export function decodePlacementRecord<T extends PlacementRecord>(stored: unknown): T {
  if (typeof stored !== 'object' || stored === null || !('v' in stored)) {
    if (typeof stored === 'object' && stored !== null && Array.isArray((stored as { candidates?: unknown }).candidates)) return stored as T;
    throw new Error('placement record: neither the stored form nor a full record');
  }
  const parsed = storedRecordSchema.safeParse(stored);
  if (!parsed.success) throw new Error(`placement record: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const { v: _v, filterPlugins, scorers, candidates, ...rest } = parsed.data;
  return { ...rest, candidates: candidates.map((c, i) => decodeCandidate(c, filterPlugins, scorers, `candidates.${i}`)) } as unknown as T;
}
