import { useEffect, useRef, useState } from 'preact/hooks';
import { feed } from './feed.js';
import type { VfEvent } from './types.js';

export interface Polled<T> {
  data: T | undefined;
  error: Error | undefined;
  /** Read again now. */
  reload(): void;
}

/**
 * Reads `load` at once, every `intervalMs`, and soon after each event that
 * `refreshOn` says concerns it (several events close together cause one read).
 * Reads again from scratch when `deps` change.
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: readonly unknown[], refreshOn?: (event: VfEvent) => boolean): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const loadRef = useRef(load);
  loadRef.current = load;
  const reloadRef = useRef<() => void>(() => undefined);
  useEffect(() => {
    let live = true;
    let running = false;
    let again = false;
    let soon: ReturnType<typeof setTimeout> | undefined;
    setData(undefined);
    const read = async (): Promise<void> => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        const value = await loadRef.current();
        if (live) {
          setData(value);
          setError(undefined);
        }
      } catch (err) {
        if (live) setError(err as Error);
      } finally {
        running = false;
        if (again && live) {
          again = false;
          void read();
        }
      }
    };
    reloadRef.current = () => void read();
    void read();
    const timer = setInterval(() => void read(), intervalMs);
    const unsubscribe = feed.subscribe((event) => {
      if (!event || !refreshOn?.(event) || soon) return;
      soon = setTimeout(() => {
        soon = undefined;
        void read();
      }, 150);
    });
    return () => {
      live = false;
      clearInterval(timer);
      if (soon) clearTimeout(soon);
      unsubscribe();
    };
  }, deps);
  return { data, error, reload: () => reloadRef.current() };
}

/** The feed's events, re-rendering (at most every 100 ms) as new ones arrive. */
export function useFeed(): { events: VfEvent[]; connected: boolean; error: string | undefined } {
  const [, setTick] = useState(0);
  useEffect(() => {
    let pending: ReturnType<typeof setTimeout> | undefined;
    const unsubscribe = feed.subscribe(() => {
      if (pending) return;
      pending = setTimeout(() => {
        pending = undefined;
        setTick((n) => n + 1);
      }, 100);
    });
    return () => {
      if (pending) clearTimeout(pending);
      unsubscribe();
    };
  }, []);
  return { events: feed.events, connected: feed.connected, error: feed.error };
}

/** The current `#/...` route, split on slashes: `#/workloads/abc` is ['workloads', 'abc']. */
export function useRoute(): string[] {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter((p) => p !== '')
    .map((p) => decodeURIComponent(p));
}
