/**
 * Request headers every google-auth-library major reads correctly. 10 and 11 (and
 * gax, building gRPC metadata) call get/forEach or iterate them like WHATWG Headers;
 * 9 merges them with Object.assign and reads Object.keys. CompatHeaders is both: each
 * header is an own enumerable property (lower-case name), and the Headers methods live
 * on the prototype. It is also far cheaper to make than a real Headers, which matters
 * on the cached-token path every request takes.
 */
export class CompatHeaders implements Iterable<[string, string]> {
  [name: string]: unknown;

  constructor(entries: Record<string, string> = {}) {
    for (const name in entries) this[name.toLowerCase()] = String(entries[name]);
  }

  get(name: string): string | null {
    const key = name.toLowerCase();
    return Object.hasOwn(this, key) ? (this[key] as string) : null;
  }
  has(name: string): boolean {
    return Object.hasOwn(this, name.toLowerCase());
  }
  set(name: string, value: string): void {
    this[name.toLowerCase()] = String(value);
  }
  append(name: string, value: string): void {
    const current = this.get(name);
    this.set(name, current === null ? value : `${current}, ${value}`);
  }
  delete(name: string): void {
    delete this[name.toLowerCase()];
  }
  getSetCookie(): string[] {
    return [];
  }
  forEach(callback: (value: string, name: string, parent: this) => void, thisArg?: unknown): void {
    for (const [name, value] of this.entries()) callback.call(thisArg, value, name, this);
  }
  *entries(): IterableIterator<[string, string]> {
    for (const name of Object.keys(this).sort()) yield [name, this[name] as string];
  }
  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }
  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/** Copies each header of a response onto the headers object as a plain property too. */
export function exposeHeaders(headers: { forEach?: (fn: (value: string, name: string) => void) => void }): void {
  headers.forEach?.((value, name) => {
    if (!Object.hasOwn(headers, name)) {
      Object.defineProperty(headers, name, { value, enumerable: true, configurable: true, writable: true });
    }
  });
}
