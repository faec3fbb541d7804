import { KvWatchInclude, type KV } from '@nats-io/kv';
import { errorMessage, type Logger } from '@virtfleet/shared';
import { readTokenRecord, type TokenBackend, type TokenRecord } from './token-registry.js';

const PREFIX = 'token.';

/** Token records as `token.<id>` keys in the coordinator's state bucket, next to the workloads. */
export class KvTokenBackend implements TokenBackend {
  constructor(
    private readonly kv: KV,
    /** The bucket's keys under a prefix (KvStateStore.keysUnder: no consumer, so it works while a NATS node is down). */
    private readonly keysUnder: (prefix: string) => Promise<string[]>,
    private readonly log: Logger,
  ) {}

  async load(): Promise<TokenRecord[]> {
    const entries = await Promise.all((await this.keysUnder(PREFIX)).map((k) => this.kv.get(k)));
    const out: TokenRecord[] = [];
    for (const e of entries) {
      if (!e || e.operation !== 'PUT') continue;
      const record = this.read(e.key, () => e.json());
      if (record) out.push(record);
    }
    return out;
  }

  async put(record: TokenRecord): Promise<void> {
    await this.kv.put(`${PREFIX}${record.id}`, JSON.stringify(record));
  }

  async follow(onStored: (record: TokenRecord) => void): Promise<() => void> {
    const updates = await this.kv.watch({ key: `${PREFIX}>`, include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      try {
        for await (const e of updates) {
          if (e.operation !== 'PUT') continue;
          const record = this.read(e.key, () => e.json());
          if (record) onStored(record);
        }
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'token watch ended: revocations made elsewhere no longer reach this coordinator');
      }
    })();
    return () => updates.stop();
  }

  private read(key: string, json: () => unknown): TokenRecord | undefined {
    try {
      return readTokenRecord(json(), key, this.log);
    } catch (err) {
      this.log.warn({ key, err: errorMessage(err) }, 'unreadable token record; ignored');
      return undefined;
    }
  }
}
