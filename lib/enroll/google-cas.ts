/**
 * Google Certificate Authority Service as the enrollment server's CA:
 * `caPools.certificates.create` (POST https://privateca.googleapis.com/v1/{caPool}/certificates)
 * with the device's request as `pemCsr` and the lifetime, authenticated through
 * google-auth-library (an optional peer dependency, loaded only when no client is given).
 * The pool's issuance policy and the certificate template decide the profile.
 */
import { randomUUID } from 'node:crypto';

import { invalidArgument, messageWithCauses, TpmJwtError } from '../errors.js';
import type { CertificateAuthority } from './certificate-authority.js';

/** What CAS is called through: google-auth-library's clients (GoogleAuth, any AuthClient) have it. */
export interface CasClient {
  request<T>(options: { url: string; method: 'POST'; data: object; responseType: 'json' }): Promise<{ data: T }>;
}

export interface GoogleCasOptions {
  /** The pool: projects/PROJECT/locations/LOCATION/caPools/POOL. */
  caPool: string;
  /** A certificate template's resource name (projects/.../certificateTemplates/T), for the pool to apply. */
  certificateTemplate?: string;
  /** Default: google-auth-library's GoogleAuth with the cloud-platform scope (Application Default Credentials). */
  client?: CasClient;
  /** Default https://privateca.googleapis.com. */
  endpoint?: string;
}

const POOL = /^projects\/[a-z0-9-]+\/locations\/[a-z0-9-]+\/caPools\/[A-Za-z0-9_-]{1,63}$/;
const TEMPLATE = /^projects\/[a-z0-9-]+\/locations\/[a-z0-9-]+\/certificateTemplates\/[A-Za-z0-9_-]{1,63}$/;

/** The resource CAS answers with: the parts read here. */
interface CasCertificate {
  pemCertificate?: unknown;
  /** The issuer first, up to the root. */
  pemCertificateChain?: unknown;
}

/** Throws ERR_INVALID_ARGUMENT for a pool or template that is not a resource name. */
export function googleCasAuthority(options: GoogleCasOptions): CertificateAuthority {
  if (typeof options?.caPool !== 'string' || !POOL.test(options.caPool)) {
    throw invalidArgument('caPool must be projects/PROJECT/locations/LOCATION/caPools/POOL');
  }
  if (options.certificateTemplate !== undefined && !TEMPLATE.test(options.certificateTemplate)) {
    throw invalidArgument('certificateTemplate must be projects/PROJECT/locations/LOCATION/certificateTemplates/T');
  }
  const endpoint = (options.endpoint ?? 'https://privateca.googleapis.com').replace(/\/$/, '');
  let client: Promise<CasClient> | undefined;
  const clientOf = () =>
    (client ??= options.client
      ? Promise.resolve(options.client)
      : import('google-auth-library').then(
          ({ GoogleAuth }) => new GoogleAuth({ scopes: 'https://www.googleapis.com/auth/cloud-platform' }),
        ));
  return {
    async issue({ request, subject, lifetimeSeconds }) {
      if (subject !== undefined) {
        throw invalidArgument("with Certificate Authority Service the subject is the request's or the template's");
      }
      // certificateId names the resource; requestId makes a retried call create it once.
      const query = new URLSearchParams({ certificateId: `device-${randomUUID()}`, requestId: randomUUID() });
      const url = `${endpoint}/v1/${options.caPool}/certificates?${query}`;
      let data: CasCertificate;
      try {
        ({ data } = await (
          await clientOf()
        ).request<CasCertificate>({
          url,
          method: 'POST',
          data: {
            pemCsr: request.pem,
            lifetime: `${lifetimeSeconds}s`,
            ...(options.certificateTemplate !== undefined && { certificateTemplate: options.certificateTemplate }),
          },
          responseType: 'json',
        }));
      } catch (err) {
        throw new TpmJwtError('ERR_TOKEN_EXCHANGE', `Certificate Authority Service: ${messageWithCauses(err)}`, {
          cause: err,
        });
      }
      const chain = data.pemCertificateChain;
      if (
        typeof data.pemCertificate !== 'string' ||
        !Array.isArray(chain) ||
        !chain.every((c) => typeof c === 'string')
      ) {
        throw new TpmJwtError('ERR_TOKEN_EXCHANGE', 'Certificate Authority Service answered without pemCertificate');
      }
      const pem = (text: string) => (text.endsWith('\n') ? text : `${text}\n`);
      return { certificate: pem(data.pemCertificate), chain: chain.map(pem).join('') };
    },
  };
}
