import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { StreamPublishError, StreamPublisher } from '@virtfleet/shared';
import { startNatsServer } from '../support/nats-server.js';

describe('StreamPublisher against a real nats-server', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const setUp = async (): Promise<{ nc: NatsConnection; publisher: StreamPublisher }> => {
    const nats = await startNatsServer();
    cleanups.push(() => nats.stop());
    const nc = await nats.connect();
    cleanups.push(() => nc.close());
    await (await jetstreamManager(nc)).streams.add({ name: 'S', subjects: ['s.>'], duplicate_window: 60_000_000_000 });
    const publisher = new StreamPublisher(nc, 2_000);
    cleanups.push(async () => publisher.close());
    return { nc, publisher };
  };

  it('stores a pipelined burst in publish order, each ack with its own sequence', async () => {
    const { nc, publisher } = await setUp();
    const acks = await Promise.all(Array.from({ length: 1_000 }, (_, i) => publisher.publish(`s.${i % 7}`, `m${i}`)));
    expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: 1_000 }, (_, i) => i + 1));
    expect(new Set(acks.map((a) => a.stream))).toEqual(new Set(['S']));
    const last = await (await jetstreamManager(nc)).streams.getMessage('S', { seq: 1_000 });
    expect(last?.string()).toBe('m999');
  });

  it.each([
    { case: 'a repeated message id is acknowledged as a duplicate and stored once', run: async (p: StreamPublisher) => {
        const first = await p.publish('s.a', 'x', { msgId: 'id-1' });
        const again = await p.publish('s.a', 'x', { msgId: 'id-1' });
        expect(again).toEqual({ stream: 'S', seq: first.seq, duplicate: true });
      } },
    { case: 'a compare-and-set on a stale subject sequence is refused with the stream error code', run: async (p: StreamPublisher) => {
        const first = await p.publish('s.b', '1', { expectLastSubjectSequence: 0 });
        await p.publish('s.b', '2', { expectLastSubjectSequence: first.seq });
        const refused = await p.publish('s.b', '3', { expectLastSubjectSequence: first.seq }).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(StreamPublishError);
        expect((refused as StreamPublishError).code).toBe(10071);
        expect((refused as Error).message).toMatch(/wrong last sequence/);
      } },
    { case: 'a subject no stream captures is refused at once, not after the timeout', run: async (p: StreamPublisher) => {
        const startedAt = Date.now();
        await expect(p.publish('nowhere.x', 'x')).rejects.toThrow(/no responders/);
        expect(Date.now() - startedAt).toBeLessThan(1_000);
      } },
  ])('$case', async ({ run }) => {
    const { publisher } = await setUp();
    await run(publisher);
  });

  it('writes KV entries the KV client reads back, deletes included', async () => {
    const { nc, publisher } = await setUp();
    const kv = await new Kvm(nc).create('pub_test', { history: 1 });
    const put = await publisher.publish('$KV.pub_test.k', 'v1', { expectLastSubjectSequence: 0 });
    expect((await kv.get('k'))?.string()).toBe('v1');
    expect((await kv.get('k'))?.revision).toBe(put.seq);
    await publisher.publish('$KV.pub_test.k', '', { headers: { 'KV-Operation': 'DEL' }, expectLastSubjectSequence: put.seq });
    expect((await kv.get('k'))?.operation).toBe('DEL');
  });

  it('rejects what is waiting when the connection closes', async () => {
    const { nc, publisher } = await setUp();
    const waiting = publisher.publish('s.c', 'x').catch((e: unknown) => e);
    await nc.close();
    expect(await waiting).toBeInstanceOf(Error);
    await expect(publisher.publish('s.c', 'y')).rejects.toThrow(/closed/);
  });
});
