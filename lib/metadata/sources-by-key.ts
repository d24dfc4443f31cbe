/**
 * Token sources made on first use per key (a scope set, an audience) and kept, the
 * least recently used dropped past a limit: clients choose the keys, so they must not
 * be able to grow the server without bound.
 */
import type { TokenSource } from '../google/token-source.js';

export class SourcesByKey {
  readonly #make: (key: string) => TokenSource;
  readonly #limit: number;
  readonly #sources = new Map<string, TokenSource>();

  constructor(make: (key: string) => TokenSource, limit: number) {
    this.#make = make;
    this.#limit = limit;
  }

  /** The source for `key`, made now if it is not kept. */
  get(key: string): TokenSource {
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
