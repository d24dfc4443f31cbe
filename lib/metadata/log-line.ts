/**
 * The metadata server's log lines: one JSON object a line, `time` first. A request's line
 * is written out by hand, and the time read once a millisecond: at tens of thousands of
 * requests a second, JSON.stringify of an object and a new Date for every line cost the
 * server as much as the rest of answering a cached token.
 */
import type { RequestLog } from './handler.js';

let clock = { ms: Number.NaN, iso: '' };

/** Now, as toISOString writes it. */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== clock.ms) clock = { ms, iso: new Date(ms).toISOString() };
  return clock.iso;
}

/**
 * The last method, path and status written, as JSON up to the value of ms: most requests
 * ask for the same thing as the one before, and get the same answer.
 */
let lastRequest = { method: '', path: '', status: 0, json: '' };

/** The line for one request: time, method, path, status, ms, then code and error when present. */
export function requestLine(entry: RequestLog): string {
  const { method, path, status, ms, code, error } = entry;
  if (method !== lastRequest.method || path !== lastRequest.path || status !== lastRequest.status) {
    const json = `,"method":${JSON.stringify(method)},"path":${JSON.stringify(path)},"status":${status},"ms":`;
    lastRequest = { method, path, status, json };
  }
  const time = isoNow();
  if (code === undefined && error === undefined) {
    // Within a millisecond, most lines are the same line: made once.
    if (time !== lastLine.time || lastRequest.json !== lastLine.json || ms !== lastLine.ms) {
      lastLine = { time, json: lastRequest.json, ms, line: `{"time":"${time}"${lastRequest.json}${ms}}` };
    }
    return lastLine.line;
  }
  const rest =
    `${code === undefined ? '' : `,"code":${JSON.stringify(code)}`}` +
    `${error === undefined ? '' : `,"error":${JSON.stringify(error)}`}}`;
  return `{"time":"${time}"${lastRequest.json}${ms}${rest}`;
}

/** The last plain line made, and what it was made of. */
let lastLine = { time: '', json: '', ms: Number.NaN, line: '' };

/** The line for a server event (listening, closed, an error): its fields after the time. */
export const eventLine = (fields: object): string => JSON.stringify({ time: isoNow(), ...fields });
