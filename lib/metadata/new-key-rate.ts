/**
 * How fast a metadata server takes on keys it does not keep a token for (a scope set,
 * an audience): each costs a TPM signing and an exchange, and a client cycling through
 * made-up scope sets would otherwise keep the TPM busy and evict every kept token.
 * A key already kept is never limited.
 */
import type { ExpiringToken, TokenCache } from '../jwt/token-cache.js';

/**
 * How fast new keys may be made: a token bucket holding up to `burst`, refilled at
 * `perMinute` (0: never, so `burst` new keys in all). One bucket may serve several
 * caches, so access tokens and ID tokens share one budget.
 */
export class NewKeyRate {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #available: number;
  #at: number;

  /** `now` is a monotonic clock in ms (tests pass their own). */
  constructor(perMinute: number, burst: number, now: () => number = () => performance.now()) {
    this.#perMs = perMinute / 60_000;
    this.#burst = burst;
    this.#now = now;
    this.#available = burst;
    this.#at = now();
  }

  /** Takes one new key from the bucket: true, or false (and nothing taken) when it is empty. */
  take(): boolean {
    const now = this.#now();
    this.#available = Math.min(this.#burst, this.#available + (now - this.#at) * this.#perMs);
    this.#at = now;
    if (this.#available < 1) return false;
    this.#available -= 1;
    return true;
  }
}

/**
 * The token for `key` from `tokens`; undefined, and nothing fetched or kept, when the
 * key is not kept there and `rate` (if any) allows no new key now.
 */
export function tokenAtRate<K>(
  tokens: TokenCache<K>,
  key: K,
  rate: NewKeyRate | undefined,
): Promise<ExpiringToken> | undefined {
  return tokens.has(key) || !rate || rate.take() ? tokens.get(key) : undefined;
}
