import type { X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';

import { chainToRoots, parseCertificates } from '../../attest/certificates.js';
import { invalidArgument, TpmJwtError } from '../../errors.js';
import { cliBin } from '../../package.js';
import {
  certificateConfiguration,
  checkProvider,
  credentialConfiguration,
  gcloudCommands,
  stsAudience,
  trustStoreYaml,
  wifTokenCommand,
  x509CredentialConfiguration,
} from '../../google/wif-config.js';
import { STS_ALGORITHMS } from '../../google/wif-subject-token.js';
import { readCertificateChain } from '../../google/wif-x509.js';
import { keyThumbprint, publicJwk } from '../../jwk.js';
import { parseKeyRef } from '../../tpm/handle.js';
import { loadKeyRef } from '../../tpm/key-ref.js';
import { certificatePems } from '../../wire/attestation-format.js';
import { optional, required, UsageError, type Values } from '../args.js';
import { json, withTpm, type Command, type Io } from '../command.js';
import { readTextInput } from '../input-file.js';
import { refuseExisting, writeOutput } from '../output-file.js';

/** This CLI as the libraries will run it: node, then the package's own bin. */
function thisCli(): string[] {
  return [process.execPath, cliBin()];
}

export const wifConfig: Command = {
  usage: `tpm-jwt wif-config --key KEYREF --project-number N --pool P --provider V --issuer URI
         [--service-account EMAIL] [--subject S] [--out-dir D] [--force] [--token-url URL] [--executable PATH]
       tpm-jwt wif-config --x509 --key KEYREF --cert device.pem [--chain chain.pem] --trust-anchor root.pem
         [--intermediate I.pem ...] --project-number N --pool P --provider V
         [--service-account EMAIL] [--out-dir D] [--force] [--token-url URL]

Writes, for keyless Workload Identity Federation with the key, to --out-dir (default .):
  jwks.json                      the key's JWKS, for create-oidc --jwk-json-path
  credential-configuration.json  for GOOGLE_APPLICATION_CREDENTIALS: an executable
                                 source that runs tpm-jwt wif-token (with --service-account,
                                 through service-account impersonation)
and prints the gcloud commands that create the pool, the provider and the grant.
The subject is the key's RFC 7638 thumbprint unless --subject. Existing files are
kept unless --force. --token-url names another STS endpoint; --executable, the
tpm-jwt the configuration runs (default: this one, with node).

With --x509, for an X.509 provider: nothing is registered per device. --cert is the
key's certificate (tpm-jwt csr, then your CA), --chain the intermediates sent after
it, --trust-anchor and --intermediate what the provider trusts. It writes
  credential-configuration.json  a certificate source, exchanged over mutual TLS
                                 at sts.mtls.googleapis.com
  certificate-config.json        Google's certificate configuration, the TPM key in it
  trust-store.yaml               for providers create-x509 --trust-store-config-path
The subject is the certificate's CN. The certificate must be for the key and chain
to the trust anchor.

  tpm-jwt wif-config --key 0x81008001 --project-number 123456789 --pool devices \\
    --provider tpm-keys --issuer https://devices.example.com --out-dir /etc/tpm-jwt
  tpm-jwt wif-config --x509 --key 0x81008001 --cert device.pem --chain chain.pem \\
    --trust-anchor root.pem --project-number 123456789 --pool devices --provider fleet-ca`,
  options: {
    key: { type: 'string' },
    'project-number': { type: 'string' },
    pool: { type: 'string' },
    provider: { type: 'string' },
    issuer: { type: 'string' },
    'service-account': { type: 'string' },
    subject: { type: 'string' },
    'out-dir': { type: 'string' },
    'token-url': { type: 'string' },
    executable: { type: 'string' },
    force: { type: 'boolean' },
    x509: { type: 'boolean' },
    cert: { type: 'string' },
    chain: { type: 'string' },
    'trust-anchor': { type: 'string' },
    intermediate: { type: 'string', multiple: true },
  },
  async run(values, io) {
    const x509 = values['x509'] === true;
    const only = x509 ? ['issuer', 'subject', 'executable'] : ['cert', 'chain', 'trust-anchor', 'intermediate'];
    const misplaced = only.find((flag) => values[flag] !== undefined);
    if (misplaced !== undefined) {
      throw new UsageError(`--${misplaced} ${x509 ? 'does not go with' : 'needs'} --x509`);
    }
    const provider = {
      projectNumber: required(values, 'project-number'),
      pool: required(values, 'pool'),
      provider: required(values, 'provider'),
      ...(!x509 && { issuer: required(values, 'issuer') }),
    };
    checkProvider(provider);
    const outDir = path.resolve(optional(values, 'out-dir') ?? '.');
    const force = values['force'] === true;
    const ref = required(values, 'key');
    // The libraries run the command (read the files) from anywhere: a key file is named absolutely.
    const keyRef = 'path' in parseKeyRef(ref) ? path.resolve(ref) : ref;
    const setup = { io, provider, outDir, force, keyRef, serviceAccount: optional(values, 'service-account') };
    if (x509) await writeX509(values, setup);
    else await writeJwks(values, setup);
  },
};

interface Setup {
  io: Io;
  provider: Parameters<typeof checkProvider>[0];
  outDir: string;
  force: boolean;
  keyRef: string;
  serviceAccount: string | undefined;
}

/**
 * Writes `files` (name → text) to the output directory, made for this user only if new
 * (the libraries' token cache goes there too); returns their paths.
 */
async function writeFiles(setup: Setup, files: Record<string, string>): Promise<string[]> {
  const paths = Object.keys(files).map((name) => path.join(setup.outDir, name));
  await mkdir(setup.outDir, { recursive: true, mode: 0o700 });
  for (const [name, text] of Object.entries(files)) await writeOutput(path.join(setup.outDir, name), text, setup.force);
  return paths;
}

/** The gcloud commands, on stdout. */
function printCommands(setup: Setup, source: Parameters<typeof gcloudCommands>[1]): void {
  setup.io.out(`${gcloudCommands(setup.provider, source).join('\n')}\n`);
}

/** A JWKS (OIDC) provider: jwks.json and an executable source that runs wif-token. */
async function writeJwks(values: Values, setup: Setup): Promise<void> {
  const { provider, outDir, keyRef, serviceAccount } = setup;
  const jwksPath = path.join(outDir, 'jwks.json');
  const configPath = path.join(outDir, 'credential-configuration.json');
  await refuseExisting([jwksPath, configPath], setup.force);
  const key = await withTpm(values, (tpm) => loadKeyRef(tpm, keyRef));
  const alg = key.algorithms.find((a) => STS_ALGORITHMS.includes(a));
  if (alg === undefined) {
    throw new TpmJwtError(
      'ERR_TPM_UNSUPPORTED',
      `STS accepts ${STS_ALGORITHMS.join(' and ')}; this key signs ${key.algorithms.join(', ')}`,
    );
  }
  const jwk = publicJwk(key.publicKey, alg);
  const subject = optional(values, 'subject') ?? keyThumbprint(key.publicKey);
  const tcti = optional(values, 'tcti');
  const executable = optional(values, 'executable');
  const command = wifTokenCommand(executable === undefined ? thisCli() : [path.resolve(executable)], {
    key: keyRef,
    issuer: provider.issuer!,
    ...(optional(values, 'subject') !== undefined && { subject }),
    ...(tcti !== undefined && { tcti }),
    ...(values['no-encrypt'] === true && { encrypt: false }),
  });
  const tokenUrl = optional(values, 'token-url');
  const config = credentialConfiguration(provider, {
    command,
    // One file per key and audience: a shared one would hand one key's token to another.
    outputFile: path.join(outDir, `wif-token-${jwk.kid}-${provider.pool}-${provider.provider}.json`),
    ...(serviceAccount !== undefined && { serviceAccount }),
    ...(tokenUrl !== undefined && { tokenUrl }),
  });
  await writeFiles(setup, { 'jwks.json': json({ keys: [jwk] }), 'credential-configuration.json': json(config) });
  setup.io.err(`wrote ${jwksPath} and ${configPath} (audience ${stsAudience(provider)}, subject ${subject})\n`);
  printCommands(setup, { jwksPath, subject, ...(serviceAccount !== undefined && { serviceAccount }) });
}

/**
 * An X.509 provider: the credential configuration, the certificate configuration and the
 * trust store. The certificate is checked first, as STS will check it: for the TPM key,
 * chaining to the trust anchor, and with a CN for the subject.
 */
async function writeX509(values: Values, setup: Setup): Promise<void> {
  const { provider, outDir, keyRef, serviceAccount } = setup;
  const names = ['credential-configuration.json', 'certificate-config.json', 'trust-store.yaml'];
  await refuseExisting(
    names.map((name) => path.join(outDir, name)),
    setup.force,
  );
  const certPath = path.resolve(required(values, 'cert'));
  const chainFile = optional(values, 'chain');
  const chainPath = chainFile === undefined ? undefined : path.resolve(chainFile);
  const pems = async (file: string, what: string) => {
    const found = certificatePems(await readTextInput(file));
    if (found.length === 0) throw invalidArgument(`${what} ${file} holds no PEM certificate`);
    return found;
  };
  const anchors = await pems(required(values, 'trust-anchor'), '--trust-anchor');
  const intermediates: string[] = [];
  for (const file of (values['intermediate'] as string[] | undefined) ?? []) {
    intermediates.push(...(await pems(file, '--intermediate')));
  }
  const chain = await readCertificateChain(certPath, chainPath);
  const key = await withTpm(values, (tpm) => loadKeyRef(tpm, keyRef));
  if (!chain.leaf.publicKey.equals(key.publicKey)) {
    throw invalidArgument(`${certPath} is not a certificate for the key ${keyRef}: STS would refuse it`);
  }
  const sent = parseCertificates(chain.pem, 'the chain').slice(1);
  const trusted = chainToRoots(
    chain.leaf,
    [...sent, ...parseCertificates(intermediates.join(''), '--intermediate')],
    parseCertificates(anchors.join(''), '--trust-anchor'),
  );
  if (!trusted.ok) throw invalidArgument(`${certPath} does not chain to the trust anchor: ${trusted.why}`);
  const subject = commonNameOf(chain.leaf);
  if (subject === undefined) {
    throw invalidArgument(`${certPath} has no CN: the provider maps google.subject from the subject's CN`);
  }
  const tcti = optional(values, 'tcti');
  const certificateKey = {
    key: keyRef,
    ...(tcti !== undefined && { tcti }),
    ...(values['no-encrypt'] === true && { encrypt: false }),
  };
  const certificateConfig = path.join(outDir, 'certificate-config.json');
  const tokenUrl = optional(values, 'token-url');
  const config = x509CredentialConfiguration(provider, {
    certificateConfig,
    ...(chainPath !== undefined && { trustChain: chainPath }),
    ...(serviceAccount !== undefined && { serviceAccount }),
    ...(tokenUrl !== undefined && { tokenUrl }),
  });
  const [configPath, , trustStorePath] = await writeFiles(setup, {
    'credential-configuration.json': json(config),
    'certificate-config.json': json(certificateConfiguration(certPath, certificateKey)),
    'trust-store.yaml': trustStoreYaml(anchors, intermediates),
  });
  setup.io.err(`wrote ${configPath}, ${certificateConfig} and ${trustStorePath!} (subject ${subject})\n`);
  printCommands(setup, {
    trustStorePath: trustStorePath!,
    subject,
    ...(serviceAccount !== undefined && { serviceAccount }),
  });
}

/** The certificate's subject CN, as the provider's attribute mapping reads it. */
function commonNameOf(certificate: X509Certificate): string | undefined {
  return certificate.subject
    .split('\n')
    .find((line) => line.startsWith('CN='))
    ?.slice(3);
}
