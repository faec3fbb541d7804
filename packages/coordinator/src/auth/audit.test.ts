import { describe, expect, it } from 'vitest';
import { auditEventData, MAX_AUDITED_CHARS } from './audit.js';
import type { AuditRecord } from './authorization.js';

const record = (overrides: Partial<AuditRecord>): AuditRecord => ({
  principal: { kind: 'certificate', id: 'e2e', role: 'admin' },
  method: 'DeleteWorkload',
  object: 'web',
  requestId: 'r1',
  result: 'OK',
  details: '',
  ...overrides,
});

describe('audit event data', () => {
  // Found by the API fuzz: a refused DeleteWorkload with a 2 MiB id made an event NATS never takes, retried every 500 ms for ever.
  it.each([
    { name: 'an object of 2 MiB', input: { object: 'x'.repeat(2 * 1024 * 1024) }, key: 'object', kept: MAX_AUDITED_CHARS.object },
    { name: 'a request id of 1 MiB', input: { requestId: 'r'.repeat(1024 * 1024) }, key: 'request_id', kept: MAX_AUDITED_CHARS.requestId },
    { name: 'details of 3 MiB', input: { result: 'INVALID_ARGUMENT', details: 'd'.repeat(3 * 1024 * 1024) }, key: 'details', kept: MAX_AUDITED_CHARS.details },
  ] as const)('keeps $kept characters of $name, and says how long it was', ({ input, key, kept }) => {
    const data = auditEventData(record(input)) as unknown as Record<string, string>;
    const original = Object.values(input).find((v) => v.length > 1000)!;
    expect(data[key]).toBe(`${original.slice(0, kept)}...(${original.length} characters)`);
    expect(JSON.stringify(data).length).toBeLessThan(4096);
  });

  it('keeps short text as it is', () => {
    expect(auditEventData(record({ object: 'web', requestId: 'r1', details: 'id: must be a workload id or name' }))).toMatchObject({ object: 'web', request_id: 'r1', details: 'id: must be a workload id or name' });
  });
});
