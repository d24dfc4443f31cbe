/**
 * Token sources made on first use per key (a scope set, an audience) and kept, the
 * least recently used dropped past a limit: clients choose the keys, so they must not
 * be able to grow the server without bound. Pinned keys (the default scope set) are
 * never dropped, so no client can make the common request sign again. Nor may clients
 * make new sources faster than a rate: each costs a TPM signing and an exchange, and a
 * client cycling through made-up scope sets would otherwise keep the TPM busy and evict
 * every kept source. A key already kept is never limited.
 */
import type { TokenSource } from '../google/token-source.js';
import type { NewKeyRate } from './new-key-rate.js';

export class SourcesByKey {
  readonly #make: (key: string) => TokenSource;
  readonly #limit: number;
  readonly #rate: NewKeyRate | undefined;
  readonly #pinned = new Map<string, TokenSource>();
  readonly #sources = new Map<string, TokenSource>();

  constructor(
    make: (key: string) => TokenSource,
    limit: number,
    pinned: readonly string[] = [],
    rate: NewKeyRate | undefined = undefined,
  ) {
    this.#make = make;
    this.#limit = limit;
    this.#rate = rate;
    for (const key of pinned) this.#pinned.set(key, make(key));
  }

  /** The source for `key`, made now if it is not kept; undefined when `rate` allows no new one now. */
  get(key: string): TokenSource | undefined {
    const pinned = this.#pinned.get(key);
    if (pinned) return pinned;
    let source = this.#sources.get(key);
    if (source) {
      // Map order is insertion order: re-inserting marks it the most recently used.
      this.#sources.delete(key);
    } else {
      if (this.#rate && !this.#rate.take()) return undefined;
      source = this.#make(key);
      if (this.#sources.size >= this.#limit) this.#sources.delete(this.#sources.keys().next().value!);
    }
    this.#sources.set(key, source);
    return source;
  }
}
