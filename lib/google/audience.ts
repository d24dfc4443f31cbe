/**
 * The audience of a self-signed JWT access token (AIP-4111): the service's root URL,
 * https://SERVICE.googleapis.com/, taken from the request URL or the client library's
 * service path.
 */

/** The audience for a request, or undefined when none can be known (use a scope). */
export function serviceAudience(
  url: string | URL | undefined,
  servicePath: string | undefined,
  universeDomain: string,
): string | undefined {
  if (url !== undefined && url !== '') {
    let parsed: URL;
    try {
      parsed = new URL(String(url));
    } catch {
      return undefined;
    }
    if (parsed.hostname.endsWith(`.${universeDomain}`)) {
      // mTLS endpoints (SERVICE.mtls.googleapis.com) share the service's audience.
      return `https://${parsed.hostname.replace(`.mtls.${universeDomain}`, `.${universeDomain}`)}/`;
    }
    return `${parsed.protocol}//${parsed.host}/`;
  }
  if (servicePath) return `https://${servicePath.replace(/\/+$/, '')}/`;
  return undefined;
}
