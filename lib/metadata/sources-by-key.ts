/**
 * Token sources made on first use per key (a scope set, an audience) and kept, the
 * least recently used dropped past a limit: clients choose the keys, so they must not
 * be able to grow the server without bound. Pinned keys (the default scope set) are
 * never dropped, so no client can make the common request sign again.
 */
import type { TokenSource } from '../google/token-source.js';

export class SourcesByKey {
  readonly #make: (key: string) => TokenSource;
  readonly #limit: number;
  readonly #pinned = new Map<string, TokenSource>();
  readonly #sources = new Map<string, TokenSource>();

  constructor(make: (key: string) => TokenSource, limit: number, pinned: readonly string[] = []) {
    this.#make = make;
    this.#limit = limit;
    for (const key of pinned) this.#pinned.set(key, make(key));
  }

  /** The source for `key`, made now if it is not kept. */
  get(key: string): TokenSource {
    const pinned = this.#pinned.get(key);
    if (pinned) return pinned;
    let source = this.#sources.get(key);
    if (source) {
      // Map order is insertion order: re-inserting marks it the most recently used.
      this.#sources.delete(key);
    } else {
      source = this.#make(key);
      if (this.#sources.size >= this.#limit) this.#sources.delete(this.#sources.keys().next().value!);
    }
    this.#sources.set(key, source);
    return source;
  }
}
