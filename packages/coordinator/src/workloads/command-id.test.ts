import { describe, expect, it } from 'vitest';
import { OPAQUE_ID } from '@virtfleet/shared';
import { commandId } from './workload-controller.js';

describe('commandId', () => {
  it('maps the same request to the same agent command, and others apart', () => {
    expect(commandId('w-1', 'stop', 'r1')).toBe(commandId('w-1', 'stop', 'r1'));
    expect(commandId('w-1', 'stop', 'r1')).not.toBe(commandId('w-2', 'stop', 'r1'));
    expect(commandId('w-1', 'stop', 'r1')).not.toBe(commandId('w-1', 'pause', 'r1'));
    expect(commandId('w-1', 'stop', '')).not.toBe(commandId('w-1', 'stop', ''));
  });
  it('fits the agent command id rules whatever the inputs', () => {
    expect(commandId('a'.repeat(80), 'delete', 'r'.repeat(128))).toMatch(OPAQUE_ID);
  });
});
