/**
 * Request headers every google-auth-library major reads correctly: a WHATWG Headers
 * (10 and 11 call forEach/get, gax builds gRPC metadata with forEach) that also has
 * each header as an own enumerable property (9 merges with Object.assign and reads
 * Object.keys). Plain Headers would send no Authorization through 9; a plain object
 * would break gax's forEach.
 */
export function compatHeaders(entries: Record<string, string>): Headers {
  const headers = new Headers(entries);
  headers.forEach((value, name) => {
    Object.defineProperty(headers, name, { value, enumerable: true, configurable: true, writable: true });
  });
  return headers;
}

/** Copies each header of a response onto the headers object as a plain property too. */
export function exposeHeaders(headers: { forEach?: (fn: (value: string, name: string) => void) => void }): void {
  headers.forEach?.((value, name) => {
    if (!Object.hasOwn(headers, name)) {
      Object.defineProperty(headers, name, { value, enumerable: true, configurable: true, writable: true });
    }
  });
}
