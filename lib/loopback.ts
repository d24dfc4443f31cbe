/**
 * Whether an address reaches this machine only: what a server holding tokens (the metadata
 * servers) may listen on, and a TPM simulator may be reached at, without the user saying
 * otherwise.
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
