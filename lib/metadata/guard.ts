/**
 * Which requests a metadata server answers at all, as GCE decides and a little more:
 * only GETs that carry `Metadata-Flavor: Google` (a browser cannot send it without a
 * CORS preflight, which the server never grants), none that came through a proxy
 * (`X-Forwarded-For`), and only for a Host that names this server, so a DNS-rebound
 * page cannot reach it by a name of its own.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { networkInterfaces } from 'node:os';

export interface Refusal {
  readonly status: number;
  readonly message: string;
}

/** The names every metadata client uses, whatever address the server listens on. */
const WELL_KNOWN_HOSTS = ['metadata.google.internal', 'metadata', '169.254.169.254', 'localhost', '127.0.0.1', '::1'];

/**
 * The Host names a server on `listenHost` answers to: the well-known ones, the listen
 * address, and for a wildcard address every address of this machine's interfaces.
 */
export function allowedHosts(listenHost: string | undefined): ReadonlySet<string> {
  const hosts = new Set(WELL_KNOWN_HOSTS);
  if (listenHost !== undefined) hosts.add(listenHost.toLowerCase());
  if (listenHost === '0.0.0.0' || listenHost === '::') {
    for (const addresses of Object.values(networkInterfaces())) {
      for (const { address } of addresses ?? []) hosts.add(address.toLowerCase());
    }
  }
  return hosts;
}

/** The host part of a Host header: no port, no IPv6 brackets, lower case; undefined if malformed. */
export function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+?)\.?)(?::[0-9]{1,5})?$/i.exec(header.trim());
  // A fully qualified name ends in a dot (gcp-metadata asks for metadata.google.internal.).
  return match ? (match[1] ?? match[2])!.toLowerCase() : undefined;
}

/** Why the request is refused, or undefined when it may be answered. */
export function refusal(
  method: string | undefined,
  headers: IncomingHttpHeaders,
  hosts: ReadonlySet<string>,
): Refusal | undefined {
  if (method !== 'GET') return { status: 405, message: 'Only GET is allowed.' };
  if (headers['metadata-flavor'] !== 'Google')
    return { status: 403, message: 'Missing Metadata-Flavor:Google header.' };
  if (headers['x-forwarded-for'] !== undefined) return { status: 403, message: 'Forwarded requests are refused.' };
  const host = hostName(headers.host);
  if (host === undefined || !hosts.has(host)) return { status: 403, message: 'Host does not name this server.' };
  return undefined;
}
