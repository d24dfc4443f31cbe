/**
 * Whether an address reaches this machine only: what a server holding tokens (the metadata
 * servers) may listen on, and a TPM simulator may be reached at, without the user saying
 * otherwise; and whether a request came through a proxy, which makes a loopback peer
 * anyone's.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
// Also matches every spelling of ::1 and IPv4-mapped 127.0.0.0/8.
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * `localhost`, 127.0.0.0/8 in plain dotted decimal, or ::1 in any spelling. Only literal
 * forms: any other name is not, whatever it resolves to today, and the resolver's other
 * IPv4 spellings (127.1, 0x7f.0.0.1, 2130706433) are not either.
 */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  if (isIPv4(host)) return LOOPBACK.check(host, 'ipv4');
  return isIPv6(host) && LOOPBACK.check(host, 'ipv6');
}

/** An https URL, or an http one to this machine: where a client may send what must not cross a network in clear. */
export function isHttpsOrLoopback(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname.replace(/^\[|\]$/g, '')));
}

/**
 * Headers a proxy adds: RFC 7239's Forwarded, RFC 9110's Via, and the de facto
 * X-Forwarded-* and X-Real-IP. A request carrying one came through something that may
 * relay for other machines, so what it is answered would leave this one.
 */
const isProxyMarker = (name: string) =>
  name === 'forwarded' || name === 'via' || name === 'x-real-ip' || name.startsWith('x-forwarded');

/**
 * Whether a request came through a proxy, by any header one adds (names as node:http keeps
 * them: lower case): a loopback server's peer address then says nothing of who asked.
 */
export function cameThroughProxy(headers: Readonly<Record<string, unknown>>): boolean {
  // for-in rather than Object.keys: no array made at every request.
  for (const name in headers) if (isProxyMarker(name)) return true;
  return false;
}
