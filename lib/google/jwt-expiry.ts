/** When an ID token expires: Google sends no expires_in with one, its exp claim says. */
import { decodeJwt } from 'jose';

/** The token's exp as a Date; undefined when it is not a JWT or has no numeric exp. */
export function jwtExpiry(token: unknown): Date | undefined {
  if (typeof token !== 'string') return undefined;
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' && Number.isFinite(exp) ? new Date(exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}
