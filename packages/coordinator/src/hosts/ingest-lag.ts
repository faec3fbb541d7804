/** One report of `IngestLag`: telemetry messages applied over the period and how late, in ms. */
export interface IngestLagReport {
  messages: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Telemetry ingest lag: from a message's `published_at` (the agent's clock)
 * to the registry applying it (this one's), for every message of a period.
 * Agents and coordinator are assumed to share a clock (NTP); the figures are
 * for spotting a coordinator that falls behind its fleet.
 */
export class IngestLag {
  private lags: number[] = [];

  record(lagMs: number): void {
    this.lags.push(lagMs);
  }

  /** The period's figures, or undefined when no message came; starts a new period. */
  take(): IngestLagReport | undefined {
    const lags = this.lags;
    this.lags = [];
    if (lags.length === 0) return undefined;
    lags.sort((a, b) => a - b);
    const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!;
    return { messages: lags.length, p50: at(0.5), p99: at(0.99), max: lags[lags.length - 1]! };
  }
}
