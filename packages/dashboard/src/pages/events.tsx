import { useState } from 'preact/hooks';
import { Badge, EmptyRow, Section } from '../components.js';
import { eventSummary, shortType } from '../format.js';
import { useFeed } from '../hooks.js';

/** Shown at most: the newest. */
const SHOWN = 500;

/** The live event feed (WatchEvents), newest first, filterable by type or subject. */
export function Events() {
  const { events, connected, error } = useFeed();
  const [filter, setFilter] = useState('');
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const shown: typeof events = [];
  for (let i = events.length - 1; i >= 0 && shown.length < SHOWN; i--) {
    const e = events[i]!;
    const haystack = `${e.type} ${e.subject} ${e.data}`.toLowerCase();
    if (words.every((w) => haystack.includes(w))) shown.push(e);
  }
  return (
    <div class="page">
      <Section
        title="Events"
        actions={
          <>
            <Badge value={connected ? 'live' : 'reconnecting'} title={error} />
            <input class="input" type="search" placeholder="filter: type, subject, data…" data-testid="event-filter" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
          </>
        }
      >
        {error ? <div class="error">{error}</div> : null}
        <table class="table" data-testid="events-table">
          <thead>
            <tr>
              <th>#</th>
              <th>time</th>
              <th>type</th>
              <th>subject</th>
              <th>what</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e) => (
              <tr key={e.sequence} data-event-type={shortType(e.type)}>
                <td class="sub">{e.sequence}</td>
                <td class="sub" title={e.time}>
                  {new Date(e.time).toLocaleTimeString([], { hour12: false })}
                </td>
                <td>{shortType(e.type)}</td>
                <td class="mono">{e.subject.startsWith('wl-') || e.type.includes('.workload.') ? <a href={`#/workloads/${encodeURIComponent(e.subject)}`}>{e.subject}</a> : e.subject}</td>
                <td>{eventSummary(e.data)}</td>
              </tr>
            ))}
            {shown.length === 0 ? (
              <EmptyRow columns={5}>no events{filter ? ' match' : ' in the last hour yet'}</EmptyRow>
            ) : null}
          </tbody>
        </table>
      </Section>
    </div>
  );
}
