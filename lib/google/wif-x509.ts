/**
 * Workload Identity Federation with X.509 certificates, the TPM key as the certificate's
 * key: the device presents its certificate over mutual TLS to Google's mTLS STS, and the
 * subject token is that certificate chain. The provider trusts a CA, so nothing is
 * registered per device. The files are Google's (a credential configuration whose
 * credential_source.certificate names a certificate configuration), with the TPM key
 * where Google's format names a key file.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';

import { parseCertificates } from '../attest/certificates.js';
import { tpmSignerOptions, type ServiceAccountInfo } from '../crypt/service-account.js';
import { TpmSigner } from '../crypt/tpm-signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { TpmTlsAgent } from '../tls/agent.js';
import { checkEncryptFromFile } from '../tpm/tcti-trust.js';

export const TOKEN_TYPE_MTLS = 'urn:ietf:params:oauth:token-type:mtls';
export const MTLS_STS_TOKEN_URL = 'https://sts.mtls.googleapis.com/v1/token';

/** The variable Google's libraries read a certificate configuration's path from. */
const CERTIFICATE_CONFIG_ENV = 'GOOGLE_API_CERTIFICATE_CONFIG';

/** credential_source.certificate, checked; paths as the file gives them. */
export interface CertificateSource {
  /** The certificate configuration; absent with use_default_certificate_config. */
  certificateConfigLocation?: string;
  /** PEM intermediates sent after the leaf (trust_chain_path). */
  trustChainPath?: string;
}

/** The TPM key in a certificate configuration: a descriptor's `tpm` block, and `encrypt: false` for --no-encrypt. */
export type CertificateKey = NonNullable<ServiceAccountInfo['tpm']> & { encrypt?: boolean };

/**
 * credential_source.certificate of `file` as Google's libraries read it: exactly one of
 * certificate_config_location and use_default_certificate_config, and an optional
 * trust_chain_path. Throws ERR_INVALID_ARGUMENT otherwise.
 */
export function readCertificateSource(value: unknown, file: string): CertificateSource {
  const source = value as {
    certificate_config_location?: unknown;
    use_default_certificate_config?: unknown;
    trust_chain_path?: unknown;
  };
  const location = source.certificate_config_location;
  const useDefault = source.use_default_certificate_config === true;
  if ((location === undefined) === !useDefault || (location !== undefined && typeof location !== 'string')) {
    throw invalidArgument(
      `${file}: credential_source.certificate needs certificate_config_location (a path) or ` +
        'use_default_certificate_config: true, not both',
    );
  }
  const chain = source.trust_chain_path;
  if (chain !== undefined && typeof chain !== 'string') throw invalidArgument(`${file}: trust_chain_path is a path`);
  return {
    ...(location !== undefined && { certificateConfigLocation: location as string }),
    ...(chain !== undefined && { trustChainPath: chain }),
  };
}

/**
 * Where the certificate configuration is, as Google's libraries look: the location the
 * credential configuration gives, else GOOGLE_API_CERTIFICATE_CONFIG, else gcloud's
 * (CLOUDSDK_CONFIG, or ~/.config/gcloud)/certificate_config.json.
 */
export function certificateConfigPath(source: CertificateSource, env: NodeJS.ProcessEnv = process.env): string {
  if (source.certificateConfigLocation !== undefined) return source.certificateConfigLocation;
  const fromEnv = env[CERTIFICATE_CONFIG_ENV];
  if (fromEnv) return fromEnv;
  const gcloud = env['CLOUDSDK_CONFIG'] || path.join(homedir(), '.config', 'gcloud');
  return path.join(gcloud, 'certificate_config.json');
}

/** What a certificate configuration's workload entry names: the certificate and the TPM key. */
export interface WorkloadCertificate {
  certPath: string;
  key: CertificateKey;
  /** The configuration's own path, for messages and relative paths. */
  file: string;
}

/**
 * The workload entry of a certificate configuration (cert_configs.workload): cert_path,
 * and the key as `tpm` (a KEYREF with its TCTI, auth_env, pcrs: what Google's libraries
 * ignore) or key_path (a TSS2 key file, where Google's format has the key file). Throws
 * ERR_KEY_FILE_INVALID for a file that is not such a configuration.
 */
export async function readCertificateConfig(file: string): Promise<WorkloadCertificate> {
  let workload: { cert_path?: unknown; key_path?: unknown; tpm?: unknown } | undefined;
  try {
    workload = (JSON.parse(await readFile(file, 'utf8')) as { cert_configs?: { workload?: typeof workload } } | null)
      ?.cert_configs?.workload;
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `cannot read the certificate configuration ${file}`, { cause: err });
  }
  const tpm = (workload?.tpm ?? {}) as CertificateKey;
  const key = typeof tpm === 'object' && tpm !== null ? (tpm.key ?? workload?.key_path) : undefined;
  if (typeof workload?.cert_path !== 'string' || typeof key !== 'string') {
    throw new TpmJwtError(
      'ERR_KEY_FILE_INVALID',
      `${file}: cert_configs.workload needs cert_path, and tpm.key or key_path (a TSS2 key file)`,
    );
  }
  return { certPath: workload.cert_path, key: { ...tpm, key }, file };
}

/** A certificate chain as the TLS client sends it and as STS takes it. */
export interface CertificateChain {
  /** PEM: the leaf, then the intermediates. */
  pem: string;
  /** The JSON array of base64 DER certificates, leaf first: the subject token. */
  subjectToken: string;
  leaf: X509Certificate;
}

/**
 * The leaf at `certPath` and the intermediates at `trustChainPath`, as Google's libraries
 * put them together: a chain that starts with the leaf is taken as it is, one that holds
 * it elsewhere is refused. Throws ERR_INVALID_ARGUMENT.
 */
export async function readCertificateChain(certPath: string, trustChainPath?: string): Promise<CertificateChain> {
  const read = async (file: string, what: string) => {
    let certificates: X509Certificate[];
    try {
      certificates = parseCertificates(await readFile(file, 'utf8'), `${what} ${file}`);
    } catch (err) {
      if (err instanceof TpmJwtError) throw err;
      throw invalidArgument(`cannot read the ${what} ${file}: ${(err as Error).message}`);
    }
    if (certificates.length === 0) throw invalidArgument(`the ${what} ${file} holds no PEM certificate`);
    return certificates;
  };
  const [leaf] = await read(certPath, 'certificate');
  let chain = trustChainPath === undefined ? [] : await read(trustChainPath, 'trust chain');
  const at = chain.findIndex((certificate) => certificate.raw.equals(leaf!.raw));
  if (at > 0) throw invalidArgument(`the trust chain ${trustChainPath} holds the certificate, but not first`);
  if (at === 0) chain = chain.slice(1);
  const all = [leaf!, ...chain];
  return {
    pem: all.map((certificate) => certificate.toString()).join(''),
    subjectToken: JSON.stringify(all.map((certificate) => certificate.raw.toString('base64'))),
    leaf: leaf!,
  };
}

/**
 * The TPM key and its certificate, as one X.509 federation credential: each call to
 * current() reads the certificate files again (a renewed certificate is used from the
 * next token on) and hands out an agent that presents that chain over TLS, the same
 * agent while the chain is the same (its kept-alive connections sign nothing more).
 */
export class X509Credential {
  readonly signer: TpmSigner;
  readonly #certPath: string;
  readonly #trustChainPath: string | undefined;
  readonly #ca: string | undefined;
  #agent: { pem: string; agent: TpmTlsAgent } | undefined;
  // Agents of certificates since renewed: requests may still be on them, so they are closed with this.
  readonly #retired: TpmTlsAgent[] = [];

  private constructor(signer: TpmSigner, certPath: string, trustChainPath?: string, ca?: string) {
    this.signer = signer;
    this.#certPath = certPath;
    this.#trustChainPath = trustChainPath;
    this.#ca = ca;
  }

  /**
   * Opens the key the certificate configuration names, held to the rules of any file
   * that names a TPM key (tpmSignerOptions, checkEncryptFromFile); `ca` (PEM) replaces
   * the roots the server is checked against. Relative paths are resolved against the
   * certificate configuration, as for descriptors. The caller closes it.
   */
  static async open(
    workload: WorkloadCertificate,
    trustChainPath: string | undefined,
    options: { ca?: string } = {},
  ): Promise<X509Credential> {
    const { encrypt, ...tpm } = workload.key;
    const signerOptions = await tpmSignerOptions({ tpm }, { file: workload.file });
    checkEncryptFromFile(encrypt, signerOptions.tcti, workload.file);
    const signer = await TpmSigner.open({ ...signerOptions, ...(encrypt === false && { encrypt }) });
    const base = path.dirname(path.resolve(workload.file));
    return new X509Credential(signer, path.resolve(base, workload.certPath), trustChainPath, options.ca);
  }

  /**
   * The subject token and the agent for the certificate as it is now. Throws
   * ERR_INVALID_ARGUMENT for a certificate that is not for the TPM key or is outside its
   * validity: STS would refuse it.
   */
  async current(): Promise<{ subjectToken: string; agent: TpmTlsAgent }> {
    const chain = await readCertificateChain(this.#certPath, this.#trustChainPath);
    if (!chain.leaf.publicKey.equals(this.signer.publicKey)) {
      throw invalidArgument(`the certificate ${this.#certPath} is not for the TPM key: STS would refuse it`);
    }
    const now = Date.now();
    if (now < Date.parse(chain.leaf.validFrom) || now > Date.parse(chain.leaf.validTo)) {
      throw invalidArgument(
        `the certificate ${this.#certPath} is valid from ${chain.leaf.validFrom} to ${chain.leaf.validTo}: ` +
          'renew it (STS refuses a certificate outside its validity)',
      );
    }
    if (this.#agent?.pem !== chain.pem) {
      if (this.#agent) this.#retired.push(this.#agent.agent);
      const agent = new TpmTlsAgent({
        key: this.signer.key,
        certificate: chain.pem,
        ...(this.#ca !== undefined && { ca: this.#ca }),
      });
      this.#agent = { pem: chain.pem, agent };
    }
    return { subjectToken: chain.subjectToken, agent: this.#agent.agent };
  }

  /** Closes the agent's connections and the TPM. */
  async close(): Promise<void> {
    for (const agent of [...this.#retired, this.#agent?.agent]) agent?.destroy();
    await this.signer.close();
  }
}
