/**
 * HashiCorp Vault's JWT auth method with the TPM key: a JWT signed in the TPM, sent to
 * `POST /v1/auth/<mount>/login` with a role, answered with a Vault token. Vault checks it
 * against the key's public key in the mount's `jwt_validation_pubkeys` (or a JWKS), and the
 * role's `bound_audiences` and `bound_subject`: no secret is stored on the device.
 */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { mintToken } from '../jwt/encode.js';
import { isHttpsOrLoopback } from '../loopback.js';
import { postForJson } from '../post.js';

export interface VaultLoginOptions {
  /** Vault's address, e.g. https://vault.example.com:8200 (the CLI reads VAULT_ADDR). */
  address: string;
  /** The JWT auth role to log in with. */
  role: string;
  /** The token's `aud`: one of the role's bound_audiences. */
  audience: string;
  /** The token's `sub` (the role's bound_subject, or its user_claim's value). */
  subject: string;
  /** The token's `iss`, for a mount with bound_issuer; default the subject. */
  issuer?: string;
  /** Where the JWT method is mounted; default `jwt`. */
  mount?: string;
  /** Seconds the JWT is valid; default 300 (it is used once, at login). */
  lifetime?: number;
  /** PEM CA certificates to trust for an https address (the CLI reads VAULT_CACERT), instead of the system's. */
  ca?: string;
  /** Vault Enterprise namespace (X-Vault-Namespace). */
  namespace?: string;
}

/** What Vault's login answers, in its own names. */
export interface VaultAuth {
  client_token: string;
  accessor: string;
  policies: string[];
  lease_duration: number;
  renewable: boolean;
  [field: string]: unknown;
}

function checked(options: VaultLoginOptions): { url: URL; lifetime: number } {
  for (const name of ['address', 'role', 'audience', 'subject'] as const) {
    if (typeof options?.[name] !== 'string' || options[name] === '') {
      throw invalidArgument(`${name} must be a non-empty string`);
    }
  }
  const mount = options.mount ?? 'jwt';
  // Segments of names, never . or ..: the login URL stays under /v1/auth/.
  const segments = mount.split('/');
  if (!segments.every((segment) => /^[A-Za-z0-9_.-]+$/.test(segment) && segment !== '.' && segment !== '..')) {
    throw invalidArgument(`mount ${mount} is not a mount path`);
  }
  let url: URL;
  try {
    url = new URL(`v1/auth/${mount}/login`, options.address.endsWith('/') ? options.address : `${options.address}/`);
  } catch {
    throw invalidArgument(`address ${options.address} is not a URL`);
  }
  // The JWT can be replayed until it expires: it goes in the clear only to this machine.
  if (!isHttpsOrLoopback(url)) {
    throw invalidArgument('address must be https (http only on loopback)');
  }
  const lifetime = options.lifetime ?? 300;
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > 3600) {
    throw invalidArgument('lifetime must be 1 to 3600 seconds');
  }
  return { url, lifetime };
}

/**
 * Logs in to Vault with a JWT `signer` signs now, and returns Vault's `auth` (its
 * `client_token` is the Vault token). ERR_TOKEN_EXCHANGE, with Vault's errors, when
 * Vault refuses or cannot be reached.
 */
export async function vaultLogin(signer: Signer, options: VaultLoginOptions): Promise<VaultAuth> {
  const { url, lifetime } = checked(options);
  const { token } = await mintToken(signer, {
    issuer: options.issuer ?? options.subject,
    subject: options.subject,
    audience: options.audience,
    additionalClaims: {},
    tokenLifetime: lifetime,
  });
  const headers = {
    'content-type': 'application/json',
    ...(options.namespace !== undefined && { 'x-vault-namespace': options.namespace }),
  };
  const body = JSON.stringify({ role: options.role, jwt: token });
  const reply = await postForJson(url, body, { headers, ca: options.ca }, 'Vault');
  const auth = (reply.json as { auth?: VaultAuth } | undefined)?.auth;
  if (reply.status !== 200 || typeof auth?.client_token !== 'string') {
    const errors = (reply.json as { errors?: unknown } | undefined)?.errors;
    const why = Array.isArray(errors) ? errors.join('; ') : reply.text.slice(0, 300);
    throw new TpmJwtError('ERR_TOKEN_EXCHANGE', `Vault refused the login (HTTP ${reply.status}): ${why}`);
  }
  return auth;
}
