/**
 * Log lines for a sink that costs a system call per write (stderr to a file or a pipe,
 * which Node writes synchronously): lines are held for up to `delayMs` or until they
 * would pass `maxBytes`, then written in one go. A server answering tens of thousands of
 * requests a second then spends a write per few hundred requests on its log, not one
 * per request. Not a write per event-loop turn either: a pending setImmediate keeps the
 * loop from waiting for I/O, so each turn would find fewer requests ready and cost more.
 *
 * The lines are held as bytes, copied at once into one buffer: held as a string, every
 * line (and the pieces it was built from) would live on until the write, through the
 * garbage collections of tens of thousands of requests, and cost the server more than
 * making them did.
 */
export interface BufferedLines {
  /** Holds `text` and a newline for the next write. */
  line(text: string): void;
  /** Writes what is held now: before the process exits, nothing may be left held. */
  flush(): void;
}

/** Lines for `write`, written within `delayMs` of the first one held, or before they pass `maxBytes`. */
export function bufferedLines(write: (text: string) => void, delayMs = 20, maxBytes = 64 * 1024): BufferedLines {
  const held = Buffer.allocUnsafe(maxBytes);
  let used = 0;
  let scheduled: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(scheduled);
    scheduled = undefined;
    if (used === 0) return;
    const text = held.toString('utf8', 0, used);
    used = 0;
    write(text);
  };
  return {
    line(text) {
      // UTF-8 takes at most 3 bytes per UTF-16 unit. A line that may not fit goes after what is held.
      const most = 3 * text.length + 1;
      if (used + most > maxBytes) {
        flush();
        if (most > maxBytes) return write(`${text}\n`);
      }
      used += held.write(text, used);
      held[used++] = 0x0a;
      scheduled ??= setTimeout(flush, delayMs);
    },
    flush,
  };
}
