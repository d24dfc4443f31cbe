/**
 * The one token cache's rules (lib/jwt/token-cache.ts), with a clock and fetches the
 * test controls: nothing here waits for time to pass.
 */
import assert from 'node:assert/strict';

import { REFRESH_THRESHOLD_SECONDS, TokenCache, USABLE_SECONDS, type ExpiringToken } from '../lib/jwt/token-cache.js';

const HOUR = 3_600_000;

/** A fetch whose calls the test settles, one by one, with a clock of its own. */
function controlledFetch() {
  const calls: { key: string; resolve: (token: ExpiringToken) => void; reject: (err: Error) => void }[] = [];
  const clock = { now: 1_000_000 };
  const fetch = (key: string) => new Promise<ExpiringToken>((resolve, reject) => calls.push({ key, resolve, reject }));
  const token = (name: string, lifetimeMs = HOUR): ExpiringToken => ({
    token: name,
    expiry: new Date(clock.now + lifetimeMs),
  });
  return { calls, clock, fetch, token };
}

describe('44 jwt token cache', () => {
  it('single flight: concurrent gets for a key share one fetch; other keys fetch on their own', async () => {
    const { calls, clock, fetch, token } = controlledFetch();
    const cache = new TokenCache(fetch, { maxSize: 10, now: () => clock.now });
    const gets = Array.from({ length: 50 }, () => cache.get('a'));
    const other = cache.get('b');
    assert.deepEqual(
      calls.map((c) => c.key),
      ['a', 'b'],
    );
    assert.equal(cache.peek('a'), undefined, 'nothing to serve while the fetch is in flight');
    calls[0]!.resolve(token('t-a'));
    calls[1]!.resolve(token('t-b'));
    assert.ok((await Promise.all(gets)).every((t) => t.token === 't-a'));
    assert.equal((await other).token, 't-b');
    assert.equal(cache.peek('a')?.token, 't-a');
    assert.equal((await cache.get('a')).token, 't-a');
    assert.equal(calls.length, 2, 'a fresh token is served without a fetch');
  });

  it('a rejected fetch is not kept: its callers all get the error, and the next get fetches again', async () => {
    const { calls, clock, fetch, token } = controlledFetch();
    const cache = new TokenCache(fetch, { maxSize: 10, now: () => clock.now });
    const failing = [cache.get('a'), cache.get('a')];
    calls[0]!.reject(Object.assign(new Error('down'), { code: 'ERR_TPM_CONNECTION' }));
    for (const result of await Promise.allSettled(failing)) {
      assert.equal(result.status, 'rejected');
      assert.equal((result as PromiseRejectedResult).reason.code, 'ERR_TPM_CONNECTION');
    }
    assert.equal(cache.peek('a'), undefined);
    assert.equal(cache.last('a'), undefined);
    // Nor is the key: a rate limit on new keys must see its retry as new.
    assert.equal(cache.has('a'), false);
    const retry = cache.get('a');
    assert.equal(calls.length, 2, 'the next get fetched again');
    calls[1]!.resolve(token('t-1'));
    assert.equal((await retry).token, 't-1');

    // A failed refresh leaves the last good token in place.
    clock.now += HOUR;
    const refreshing = cache.get('a');
    calls[2]!.reject(new Error('down again'));
    await assert.rejects(refreshing, /down again/);
    assert.equal(cache.last('a')?.token, 't-1');
    assert.equal(cache.peek('a'), undefined, 'an expired token is not served');
  });

  it('a fetch that throws at once rejects like one that fails later', async () => {
    const cache = new TokenCache(
      (): Promise<ExpiringToken> => {
        throw Object.assign(new Error('bad'), { code: 'ERR_INVALID_ARGUMENT' });
      },
      { maxSize: 1 },
    );
    await assert.rejects(cache.get('a'), { code: 'ERR_INVALID_ARGUMENT' });
  });

  it('drops the least recently used key past maxSize; pinned keys never', async () => {
    const { calls, clock, fetch, token } = controlledFetch();
    const cache = new TokenCache(fetch, { maxSize: 2, pinned: ['p'], now: () => clock.now });
    const settle = async (key: string) => {
      const got = cache.get(key);
      calls.at(-1)!.resolve(token(`t-${key}`));
      return (await got).token;
    };
    await settle('p');
    await settle('a');
    await settle('b');
    assert.equal(cache.peek('a')?.token, 't-a', 'a peek counts as a use');
    await settle('c'); // b is now the least recently used
    assert.deepEqual(
      ['p', 'a', 'b', 'c'].map((key) => cache.has(key)),
      [true, true, false, true],
    );
    await cache.get('a');
    await settle('d'); // c goes: a was used after it
    assert.deepEqual(
      ['p', 'a', 'c', 'd'].map((key) => cache.has(key)),
      [true, true, false, true],
    );
    assert.equal(cache.peek('p')?.token, 't-p', 'the pinned key kept its token throughout');
    assert.equal(calls.length, 5);
  });

  it('a key dropped while its fetch is in flight still answers its callers, and keeps nothing', async () => {
    const { calls, clock, fetch, token } = controlledFetch();
    const cache = new TokenCache(fetch, { maxSize: 1, now: () => clock.now });
    const first = cache.get('a');
    const second = cache.get('b'); // drops a
    assert.equal(cache.has('a'), false);
    calls[0]!.resolve(token('t-a'));
    calls[1]!.resolve(token('t-b'));
    assert.equal((await first).token, 't-a');
    assert.equal((await second).token, 't-b');
    assert.equal(cache.peek('a'), undefined);
    assert.equal(cache.has('a'), false);
  });

  it('refreshes ahead of expiry: served until REFRESH_THRESHOLD_SECONDS before it, then fetched anew', async () => {
    const { calls, clock, fetch, token } = controlledFetch();
    const cache = new TokenCache(fetch, { maxSize: 1, now: () => clock.now });
    const first = cache.get('a');
    calls[0]!.resolve(token('t-1', HOUR));
    const { expiry } = await first;
    const refreshAt = expiry.getTime() - REFRESH_THRESHOLD_SECONDS * 1000;

    clock.now = refreshAt - 1;
    assert.equal(cache.peek('a')?.token, 't-1');
    assert.equal((await cache.get('a')).token, 't-1');
    assert.equal(calls.length, 1);

    clock.now = refreshAt;
    assert.equal(cache.peek('a'), undefined, 'near expiry: not served');
    assert.equal(cache.last('a')?.token, 't-1', 'though still the last token');
    const renewed = cache.get('a');
    assert.equal(calls.length, 2, 'near expiry: fetched again');
    calls[1]!.resolve(token('t-2', HOUR));
    assert.equal((await renewed).token, 't-2');

    // A token that arrives already near its expiry is handed out once, then fetched again.
    const short = cache.refresh('a');
    calls[2]!.resolve(token('t-3', REFRESH_THRESHOLD_SECONDS * 1000));
    assert.equal((await short).token, 't-3');
    void cache.get('a');
    assert.equal(calls.length, 4);
  });

  it('refresh() fetches even with a fresh token, and joins a fetch in flight', async () => {
    const { calls, clock, fetch, token } = controlledFetch();
    const cache = new TokenCache(fetch, { maxSize: 1, now: () => clock.now });
    const got = cache.get('a');
    const joined = cache.refresh('a');
    assert.equal(calls.length, 1);
    calls[0]!.resolve(token('t-1'));
    assert.equal((await got).token, 't-1');
    assert.equal((await joined).token, 't-1');
    const forced = cache.refresh('a');
    assert.equal(calls.length, 2);
    assert.equal(cache.peek('a')?.token, 't-1', 'the fresh token is served until the new one arrives');
    calls[1]!.resolve(token('t-2'));
    assert.equal((await forced).token, 't-2');
    assert.equal(cache.peek('a')?.token, 't-2');
  });

  it('refuses a maxSize that is not a positive integer (ERR_INVALID_ARGUMENT)', () => {
    for (const maxSize of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => new TokenCache(async () => ({ token: 't', expiry: new Date() }), { maxSize }), {
        code: 'ERR_INVALID_ARGUMENT',
      });
    }
  });

  describe('refreshAhead (servers)', () => {
    const flush = () => new Promise((resolve) => setImmediate(resolve));

    /** A refreshAhead cache holding token 't1' for 'a', its clock just past the refresh point. */
    async function dueCache() {
      const control = controlledFetch();
      const { calls, clock, fetch, token } = control;
      const cache = new TokenCache(fetch, { maxSize: 10, now: () => clock.now, refreshAhead: true });
      const first = cache.get('a');
      calls[0]!.resolve(token('t1'));
      await first;
      clock.now += HOUR - REFRESH_THRESHOLD_SECONDS * 1000 + 1;
      return { ...control, cache };
    }

    it('serves the due token at once and fetches its successor in the background, once', async () => {
      const { calls, cache, token } = await dueCache();
      assert.equal(cache.peek('a')?.token, 't1', 'served, not waited for');
      assert.equal((await cache.get('a')).token, 't1');
      assert.equal(calls.length, 2, 'one background fetch for both');
      calls[1]!.resolve(token('t2'));
      await flush();
      assert.equal(cache.peek('a')?.token, 't2');
      assert.equal(calls.length, 2);
    });

    it('a failed background fetch: the old token still, tried again after a backoff that doubles', async () => {
      const { calls, cache, clock, token } = await dueCache();
      assert.equal(cache.peek('a')?.token, 't1');
      calls[1]!.reject(new Error('token endpoint down'));
      await flush();
      assert.equal((await cache.get('a')).token, 't1', 'no caller sees the failure');
      assert.equal(calls.length, 2, 'not tried again before the backoff');
      clock.now += 1000;
      assert.equal(cache.peek('a')?.token, 't1');
      assert.equal(calls.length, 3, 'tried again after 1 s');
      calls[2]!.reject(new Error('still down'));
      await flush();
      clock.now += 1000;
      cache.peek('a');
      assert.equal(calls.length, 3, 'the next pause is 2 s');
      clock.now += 1000;
      cache.peek('a');
      assert.equal(calls.length, 4);
      calls[3]!.resolve(token('t2'));
      await flush();
      assert.equal(cache.peek('a')?.token, 't2');
    });

    it('waits for a fetch once the kept token is no longer usable, and without refreshAhead as before', async () => {
      const { calls, clock, fetch, token } = controlledFetch();
      const ahead = new TokenCache(fetch, { maxSize: 10, now: () => clock.now, refreshAhead: true });
      const plain = new TokenCache(fetch, { maxSize: 10, now: () => clock.now });
      for (const cache of [ahead, plain]) {
        const first = cache.get('a');
        calls.at(-1)!.resolve(token('old'));
        await first;
      }
      clock.now += HOUR - REFRESH_THRESHOLD_SECONDS * 1000 + 1;
      assert.equal(plain.peek('a'), undefined, 'a due token is not served without refreshAhead');
      clock.now += (REFRESH_THRESHOLD_SECONDS - USABLE_SECONDS) * 1000;
      assert.equal(ahead.peek('a'), undefined, 'too close to its expiry to hand out');
      const waited = ahead.get('a');
      calls.at(-1)!.resolve(token('new'));
      assert.equal((await waited).token, 'new');
    });
  });
});
