/**
 * Which requests a metadata server answers at all, as GCE decides and a little more:
 * only GETs that carry `Metadata-Flavor: Google` (a browser cannot send it without a
 * CORS preflight, which the server never grants), none that came through a proxy
 * (any header a proxy adds, not only `X-Forwarded-For`), and only for one Host that
 * names this server, so a DNS-rebound page cannot reach it by a name of its own.
 * (Where it may listen is lib/loopback.ts's.)
 */
import type { IncomingMessage } from 'node:http';
import { networkInterfaces } from 'node:os';

import { cameThroughProxy } from '../loopback.js';

interface Refusal {
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

/** The last Host header read and its host name: a client's requests all carry the same one. */
let lastHost: { header: string; name: string | undefined } | undefined;

/** The host part of a Host header: no port, no IPv6 brackets, lower case; undefined if malformed. */
function hostName(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (lastHost?.header === header) return lastHost.name;
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+?)\.?)(?::[0-9]{1,5})?$/i.exec(header.trim());
  // A fully qualified name ends in a dot (gcp-metadata asks for metadata.google.internal.).
  const name = match ? (match[1] ?? match[2])!.toLowerCase() : undefined;
  lastHost = { header, name };
  return name;
}

/** How many Host fields the request carries (`headers.host` keeps only the first). */
function hostFields(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/** Why the request is refused, or undefined when it may be answered. */
export function refusal(
  req: Pick<IncomingMessage, 'method' | 'headers' | 'rawHeaders'>,
  hosts: ReadonlySet<string>,
): Refusal | undefined {
  const { headers } = req;
  // RFC 9112 3.2: answer 400. Node would read the first, a proxy in front maybe the last.
  if (hostFields(req.rawHeaders) > 1) return { status: 400, message: 'More than one Host header.' };
  if (req.method !== 'GET') return { status: 405, message: 'Only GET is allowed.' };
  if (headers['metadata-flavor'] !== 'Google')
    return { status: 403, message: 'Missing Metadata-Flavor:Google header.' };
  if (cameThroughProxy(headers)) return { status: 403, message: 'Forwarded requests are refused.' };
  const host = hostName(headers.host);
  if (host === undefined || !hosts.has(host)) return { status: 403, message: 'Host does not name this server.' };
  return undefined;
}
