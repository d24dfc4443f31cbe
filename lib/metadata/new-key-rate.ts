/**
 * A token bucket for how fast a metadata server makes token sources for keys it has
 * not seen (a scope set, an audience): each costs a TPM signing and an exchange.
 */

/**
 * How fast new keys may be made: a token bucket holding up to `burst`, refilled at
 * `perMinute` (0: never, so `burst` new keys in all). One bucket may serve several
 * SourcesByKey, so access tokens and ID tokens share one budget.
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
