import { describe, expect, it } from 'vitest';
import { SseParser, type SseMessage } from './sse.js';

describe('SseParser', () => {
  const cases: { name: string; chunks: string[]; want: SseMessage[] }[] = [
    { name: 'one event', chunks: ['id: 7\nevent: io.x\ndata: {"a":1}\n\n'], want: [{ id: '7', event: 'io.x', data: '{"a":1}' }] },
    { name: 'comments and keep-alives', chunks: [': virtfleet\n\n: keep-alive\n\ndata: x\n\n'], want: [{ id: undefined, event: 'message', data: 'x' }] },
    { name: 'split anywhere, CRLF split too', chunks: ['id: 1\r', '\nda', 'ta: a\r\n', 'data: b\r\n\r', '\n'], want: [{ id: '1', event: 'message', data: 'a\nb' }] },
    { name: 'the id carries on to later events', chunks: ['id: 3\ndata: a\n\ndata: b\n\n'], want: [{ id: '3', event: 'message', data: 'a' }, { id: '3', event: 'message', data: 'b' }] },
    { name: 'an incomplete event is held back', chunks: ['data: a\n'], want: [] },
    { name: 'no space after the colon', chunks: ['data:x\n\n'], want: [{ id: undefined, event: 'message', data: 'x' }] },
  ];
  it.each(cases)('$name', ({ chunks, want }) => {
    const got: SseMessage[] = [];
    const parser = new SseParser((m) => got.push(m));
    for (const c of chunks) parser.push(c);
    expect(got).toEqual(want);
  });
});
