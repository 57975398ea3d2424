// A connection arriving just as the idle timeout expires must never be cut: it either withdraws the
// scale-down or is held until a fresh pod serves it. Many rounds aimed at the moment the timeout expires,
// as the gateway's log says; the log also says which rounds really raced, and at least one must have.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup, type Gateway } from './harness.ts';
import { echoExchange } from '../support/echo-client.ts';
import { sleep, waitFor } from '../support/wait.ts';

type LogEvent = Record<string, unknown>;

/**
 * What the racing connection met, read from the order of the gateway's log events since the first
 * connection of the round closed (from then on the pod counts as idle):
 * - early: it arrived before the scale-down was proposed;
 * - late: it arrived after the scale-down had landed (`scaled down` logged before it), a plain cold start;
 * - raced: the scale-down was proposed (the pod fenced) and not yet landed when it arrived, so the gateway
 *   held it; `landed` says whether the write still went through under it (else it was withdrawn).
 */
type RoundKind = 'early' | 'late' | 'raced' | 'other';
interface Round {
  kind: RoundKind;
  landed: boolean;
}

function isScale(e: LogEvent, direction: 'up' | 'down'): boolean {
  return e['event'] === 'scale' && e['direction'] === direction;
}

function classify(events: LogEvent[], idleFrom: number, racerId: unknown): Round {
  const arrival = events.findIndex(
    (e, i) =>
      i > idleFrom && e['id'] === racerId && (e['event'] === 'connection_held' || e['event'] === 'connection_routed'),
  );
  assert.ok(arrival > idleFrom, `the racing connection ${String(racerId)} left no held/routed event`);
  const before = events.slice(idleFrom + 1, arrival);
  if (before.some((e) => isScale(e, 'down'))) return { kind: 'late', landed: true };
  if (!before.some((e) => e['event'] === 'scale_down_proposed')) return { kind: 'early', landed: false };
  if (events[arrival]?.['event'] !== 'connection_held') return { kind: 'other', landed: false };
  const landedAt = events.findIndex((e, i) => i > arrival && isScale(e, 'down'));
  if (landedAt >= 0) {
    // The write landed with a client held: the gateway must wake buildkitd again for it.
    assert.ok(
      events.some((e, i) => i > landedAt && isScale(e, 'up')),
      'a scale-down landed under a held client and nothing woke buildkitd again',
    );
  }
  return { kind: 'raced', landed: landedAt >= 0 };
}

/** Index of the first event at or after `from` that matches, once the gateway has logged it. */
function nextEvent(gateway: Gateway, from: number, what: string, match: (e: LogEvent) => boolean): Promise<number> {
  return waitFor(
    what,
    () => {
      const index = gateway.events().findIndex((e, i) => i >= from && match(e));
      return index >= 0 ? index + 1 : undefined;
    },
    30_000,
    10,
  ).then((n) => n - 1);
}

test('connections racing the idle timer are always served in full', async (t) => {
  const env = await setup(t);
  const idleMs = 1000;
  const gateway = await env.startGateway({ SCALE_DOWN_IDLE_TIMEOUT: `${idleMs}ms` });
  const rounds = Number(process.env['BKA_IDLE_RACE_ROUNDS'] ?? 15);
  // The race window is one scale read and write long (milliseconds): keep trying, within a bound, until a round hit it.
  const maxRounds = rounds * 4;
  const payload = Buffer.alloc(64 * 1024, 'r');
  const seen: Round[] = [];
  // Where to aim, relative to the moment the timer fires: later after an early round, earlier after a late one.
  let aimMs = 0;
  let cursor = 0;
  for (let round = 0; round < maxRounds && (round < rounds || !seen.some((r) => r.kind === 'raced')); round += 1) {
    const first = await echoExchange(gateway.proxyPort, payload);
    assert.equal(Buffer.compare(first.reply, payload), 0, `round ${round}: first connection`);
    const firstClosed = await nextEvent(
      gateway,
      cursor,
      `round ${round}: first connection closed`,
      (e) => e['event'] === 'connection_closed',
    );
    const firstId = gateway.events()[firstClosed]?.['id'];
    const timerStarted = firstClosed;
    const firesAt = Date.parse(String(gateway.events()[firstClosed]?.['time'])) + idleMs;
    // Every third round keeps the old spread (just before, at, just after) so each outcome stays covered.
    const jittered = round % 3 === 2;
    const aim = jittered ? -150 + Math.floor(Math.random() * 300) : aimMs;
    await sleep(Math.max(0, firesAt + aim - Date.now()));
    const racer = await echoExchange(gateway.proxyPort, payload);
    assert.equal(racer.error, undefined, `round ${round}: racing connection errored`);
    assert.equal(
      Buffer.compare(racer.reply, payload),
      0,
      `round ${round}: racing connection was cut after ${racer.reply.length} bytes`,
    );
    const racerClosed = await nextEvent(
      gateway,
      timerStarted,
      `round ${round}: racing connection closed`,
      (e) => e['event'] === 'connection_closed' && e['id'] !== firstId,
    );
    const events = gateway.events();
    const result = classify(events, timerStarted, events[racerClosed]?.['id']);
    seen.push(result);
    t.diagnostic(
      `round ${round}: aimed ${aim}ms from the timer firing: ${result.kind}${result.kind === 'raced' ? (result.landed ? ' (scale-down landed, woke again)' : ' (scale-down withdrawn)') : ''}`,
    );
    if (!jittered) aimMs += result.kind === 'early' ? 3 : result.kind === 'late' ? -3 : 0;
    cursor = racerClosed + 1;
  }
  const count = (kind: RoundKind, landed?: boolean) =>
    seen.filter((r) => r.kind === kind && (landed === undefined || r.landed === landed)).length;
  const summary =
    `${seen.length} rounds: ${count('raced')} raced (${count('raced', false)} scale-downs withdrawn, ${count('raced', true)} landed and woke again), ` +
    `${count('early')} came before the proposal, ${count('late')} came after the scale-down, ${count('other')} other`;
  t.diagnostic(summary);
  assert.ok(count('raced') > 0, `no round raced the scale-down: ${summary}`);
  assert.equal(await gateway.metric('bka_connections_total', { outcome: 'completed' }), seen.length * 2);
  assert.equal(await gateway.metric('bka_connections_total'), seen.length * 2, 'no connection ended any other way');
  await waitFor('final scale-down', async () => (await env.replicas()).spec === 0, 30_000);
});
