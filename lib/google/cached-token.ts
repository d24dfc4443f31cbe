/** One token at a time from a slow source: reused until near expiry, one fetch in flight. */
import { nearExpiry } from '../jwt/mint.js';
import type { TokenSource } from './token-source.js';

export interface ExpiringToken {
  token: string;
  expiry: Date;
}

/** A TokenSource whose every request, whatever its URL, gets the one token `fetch` makes, cached. */
export function cachedTokenSource(fetch: () => Promise<ExpiringToken>): TokenSource {
  const cache = new CachedToken(fetch);
  return { cached: () => cache.current()?.token, token: () => cache.get() };
}

export class CachedToken {
  readonly #fetch: () => Promise<ExpiringToken>;
  #current: ExpiringToken | undefined;
  #pending: Promise<ExpiringToken> | undefined;

  constructor(fetch: () => Promise<ExpiringToken>) {
    this.#fetch = fetch;
  }

  /** The cached token if it is not near expiry, else undefined; never fetches. */
  current(): ExpiringToken | undefined {
    return this.#current && !nearExpiry(this.#current.expiry) ? this.#current : undefined;
  }

  /** The cached token, or a new one; concurrent callers share one fetch, and a failed fetch is not kept. */
  get(): Promise<ExpiringToken> {
    const current = this.current();
    if (current) return Promise.resolve(current);
    this.#pending ??= this.#fetch()
      .then((token) => (this.#current = token))
      .finally(() => (this.#pending = undefined));
    return this.#pending;
  }
}
