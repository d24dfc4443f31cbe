/**
 * Log lines for a sink that costs a system call per write (stderr to a file or a pipe,
 * which Node writes synchronously): lines are held for up to `delayMs` or until they
 * reach `maxChars`, then written in one go. A server answering tens of thousands of
 * requests a second then spends a write per few hundred requests on its log, not one
 * per request. Not a write per event-loop turn either: a pending setImmediate keeps the
 * loop from waiting for I/O, so each turn would find fewer requests ready and cost more.
 */
export interface BufferedLines {
  /** Holds `text` and a newline for the next write. */
  line(text: string): void;
  /** Writes what is held now: before the process exits, nothing may be left held. */
  flush(): void;
}

/** Lines for `write`, written within `delayMs` of the first one held, or once `maxChars` are held. */
export function bufferedLines(write: (text: string) => void, delayMs = 20, maxChars = 64 * 1024): BufferedLines {
  let held = '';
  let scheduled: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(scheduled);
    scheduled = undefined;
    if (held === '') return;
    const text = held;
    held = '';
    write(text);
  };
  return {
    line(text) {
      held += `${text}\n`;
      if (held.length >= maxChars) flush();
      else scheduled ??= setTimeout(flush, delayMs);
    },
    flush,
  };
}
