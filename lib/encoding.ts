/** Bytes as text: the PEM blocks the library writes and the hex fields it reads. */

/** `der` as a PEM block (RFC 7468): base64 in 64-column lines between BEGIN and END lines naming `label`. */
export function pem(label: string, der: Uint8Array): string {
  const body = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** The bytes `value` spells in hex (either case, whole bytes, at least one); undefined for anything else. */
export function hexBytes(value: unknown): Buffer | undefined {
  return typeof value === 'string' && /^([0-9a-f]{2})+$/i.test(value) ? Buffer.from(value, 'hex') : undefined;
}
