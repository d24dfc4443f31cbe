/**
 * The one token cache: tokens by key (an audience, a scope set, or a single key), each
 * fetched when first asked for and again shortly before it expires, one fetch per key
 * in flight, the least recently used key dropped past a bound. Every credential and
 * token source in this package keeps its tokens here, so these rules hold everywhere.
 */

import { invalidArgument } from '../errors.js';

/** A bearer token and when it stops being accepted. */
export interface ExpiringToken {
  token: string;
  expiry: Date;
}

/** Tokens are refreshed this long before they expire (google-auth's REFRESH_THRESHOLD). */
export const REFRESH_THRESHOLD_SECONDS = 225;

/** With refreshAhead, a token due for refresh is still handed out while it has this long left. */
export const USABLE_SECONDS = 60;

/** With refreshAhead, a failed background fetch is tried again after this, doubling up to the most. */
const RETRY_FIRST_MS = 1000;
const RETRY_MOST_MS = 30_000;

interface TokenCacheOptions<K> {
  /** How many keys are kept besides the pinned ones; the least recently used goes first. */
  maxSize: number;
  /** Keys never dropped (what nearly every request asks for). */
  pinned?: Iterable<K>;
  /** The wall clock in ms, as Date.now (tests pass their own). */
  now?: () => number;
  /**
   * For servers (the metadata server, TpmAuthClient), whose requests should not wait on
   * the TPM or a token endpoint once a token exists: a token due for refresh is still
   * served while it has more than USABLE_SECONDS left, its successor fetched in the
   * background; a failed background fetch is tried again after a backoff (1 s doubling
   * to 30 s), the old token served meanwhile, until it is no longer usable.
   */
  refreshAhead?: boolean;
}

interface Entry {
  /** The last token fetched, fresh or not. */
  token: ExpiringToken | undefined;
  /** The fetch in flight, which every caller for the key shares. */
  pending: Promise<ExpiringToken> | undefined;
  /** refreshAhead: no background fetch before this time (ms), after a failed one; and the pause it was. */
  retryAt: number;
  backoffMs: number;
}

const emptyEntry = (): Entry => ({ token: undefined, pending: undefined, retryAt: 0, backoffMs: 0 });

/**
 * Rules: a token is served until REFRESH_THRESHOLD_SECONDS before its expiry, then
 * fetched anew (callers wait for it, unless refreshAhead); concurrent callers for a key share one fetch; a
 * failed fetch rejects its callers and leaves the entry as it was, so the next call
 * fetches again; past `maxSize` keys the least recently used one (by get, peek or
 * refresh) that is not pinned is dropped, a fetch it had in flight still answering
 * its callers.
 */
export class TokenCache<K = string> {
  readonly #fetch: (key: K) => Promise<ExpiringToken>;
  readonly #maxSize: number;
  readonly #now: () => number;
  readonly #refreshAhead: boolean;
  readonly #pinned = new Map<K, Entry>();
  // Map order is insertion order: re-inserting a key on use keeps the least recent first.
  readonly #recent = new Map<K, Entry>();

  /** Fetches nothing yet; throws ERR_INVALID_ARGUMENT for a maxSize that is not a positive integer. */
  constructor(fetch: (key: K) => Promise<ExpiringToken>, options: TokenCacheOptions<K>) {
    if (!Number.isInteger(options.maxSize) || options.maxSize < 1) {
      throw invalidArgument('maxSize must be a positive integer');
    }
    this.#fetch = fetch;
    this.#maxSize = options.maxSize;
    this.#now = options.now ?? Date.now;
    this.#refreshAhead = options.refreshAhead === true;
    for (const key of options.pinned ?? []) this.#pinned.set(key, emptyEntry());
  }

  /** Whether `key` is kept: pinned, or fetched (or being fetched) and not dropped since. */
  has(key: K): boolean {
    return this.#pinned.has(key) || this.#recent.has(key);
  }

  /** True while `token` may still be served: until REFRESH_THRESHOLD_SECONDS before its expiry. */
  isFresh(token: ExpiringToken): boolean {
    return this.#now() < token.expiry.getTime() - REFRESH_THRESHOLD_SECONDS * 1000;
  }

  /**
   * The token `key` may be served now, or undefined: synchronous, the path most requests
   * take. Fetches only in the background (refreshAhead, a token due for refresh).
   */
  peek(key: K): ExpiringToken | undefined {
    const entry = this.#pinned.get(key) ?? this.#recent.get(key);
    const token = entry && this.#servable(key, entry);
    if (token) this.#use(key);
    return token;
  }

  /** The last token fetched for `key`, fresh or not; undefined before the first. */
  last(key: K): ExpiringToken | undefined {
    return (this.#pinned.get(key) ?? this.#recent.get(key))?.token;
  }

  /** The token `key` may be served now (see peek), else the one a fetch (shared with concurrent callers) returns. */
  get(key: K): Promise<ExpiringToken> {
    const entry = this.#use(key);
    const token = this.#servable(key, entry);
    if (token) return Promise.resolve(token);
    return this.#fetchInto(key, entry);
  }

  /** A newly fetched token for `key` even if a fresh one is kept; joins a fetch already in flight. */
  refresh(key: K): Promise<ExpiringToken> {
    return this.#fetchInto(key, this.#use(key));
  }

  /**
   * The kept token if it may be served: fresh, or with refreshAhead still usable (its
   * successor then fetched in the background).
   */
  #servable(key: K, entry: Entry): ExpiringToken | undefined {
    const token = entry.token;
    if (!token) return undefined;
    if (this.isFresh(token)) return token;
    if (!this.#refreshAhead || this.#now() >= token.expiry.getTime() - USABLE_SECONDS * 1000) return undefined;
    // Its failure is the next try's business (#fetchInto set when); no caller sees it.
    if (!entry.pending && this.#now() >= entry.retryAt) this.#fetchInto(key, entry).catch(() => undefined);
    return token;
  }

  #fetchInto(key: K, entry: Entry): Promise<ExpiringToken> {
    entry.pending ??= new Promise<ExpiringToken>((resolve) => resolve(this.#fetch(key)))
      .then(
        (token) => {
          entry.retryAt = 0;
          entry.backoffMs = 0;
          return (entry.token = token);
        },
        (err: unknown) => {
          // A key whose only fetch failed is not kept: it would count as known (a rate
          // limit on new keys would wave its retries through) and push out keys that
          // hold tokens.
          if (!entry.token && this.#recent.get(key) === entry) this.#recent.delete(key);
          // Set before `pending` clears, so that no call in between starts another at once.
          entry.backoffMs = Math.min(Math.max(entry.backoffMs * 2, RETRY_FIRST_MS), RETRY_MOST_MS);
          entry.retryAt = this.#now() + entry.backoffMs;
          throw err;
        },
      )
      .finally(() => (entry.pending = undefined));
    return entry.pending;
  }

  /** The entry for `key`, made if need be and marked most recently used; drops the least recent past the bound. */
  #use(key: K): Entry {
    const pinned = this.#pinned.get(key);
    if (pinned) return pinned;
    const entry = this.#recent.get(key) ?? emptyEntry();
    this.#recent.delete(key);
    this.#recent.set(key, entry);
    if (this.#recent.size > this.#maxSize) this.#recent.delete(this.#recent.keys().next().value!);
    return entry;
  }
}
