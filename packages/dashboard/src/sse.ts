/** One Server-Sent Event. */
export interface SseMessage {
  /** The last `id:` seen on the stream, carried on as the spec says. */
  id: string | undefined;
  /** `event:`, else 'message'. */
  event: string;
  /** The `data:` lines, joined by newlines. */
  data: string;
}

/**
 * A Server-Sent Events parser for a body read with fetch() (EventSource
 * cannot send an Authorization header): push text as it arrives, in pieces
 * of any size; each complete event goes to `onMessage`. Comment lines
 * (`: keep-alive`) are skipped; an event without data is dropped, as
 * EventSource drops it.
 */
export class SseParser {
  private buffer = '';
  private lastId: string | undefined;
  private event: string | undefined;
  private data: string[] = [];

  constructor(private readonly onMessage: (message: SseMessage) => void) {}

  push(text: string): void {
    this.buffer += text;
    for (;;) {
      const end = /\r\n|\r|\n/.exec(this.buffer);
      if (!end) return;
      // A lone CR at the end may be the first half of a CRLF still to come.
      if (end[0] === '\r' && end.index === this.buffer.length - 1) return;
      const line = this.buffer.slice(0, end.index);
      this.buffer = this.buffer.slice(end.index + end[0].length);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
  }

  private dispatch(): void {
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = undefined;
    if (data.length === 0) return;
    this.onMessage({ id: this.lastId, event: event ?? 'message', data: data.join('\n') });
  }
}
