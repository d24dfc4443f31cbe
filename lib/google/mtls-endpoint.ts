/**
 * A Google service's mTLS endpoint, Google's own naming: https://SERVICE.UD/... is served
 * over mutual TLS at https://SERVICE.mtls.UD/... for the universe domain UD. Apart from
 * the TLS code (mtls.ts), so that the token sources can name it without loading that.
 */
export function mtlsEndpoint(url: string | URL, universeDomain: string): string {
  const parsed = new URL(url);
  const suffix = `.${universeDomain}`;
  const service = parsed.hostname.slice(0, -suffix.length);
  // Anything else (already mTLS, another host, a port, plain http) is left as it is.
  if (
    parsed.protocol === 'https:' &&
    parsed.port === '' &&
    parsed.hostname.endsWith(suffix) &&
    /^[a-z0-9-]+$/.test(service)
  ) {
    parsed.hostname = `${service}.mtls${suffix}`;
  }
  return parsed.toString();
}
