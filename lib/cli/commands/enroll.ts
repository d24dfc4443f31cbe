import { X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';

import { enroll, renewEnrollment } from '../../enroll/device.js';
import { parseKeyRef } from '../../tpm/handle.js';
import { akOptions } from '../ak-flags.js';
import { authFromEnv, optional, required, UsageError } from '../args.js';
import { tpmOptions, type Command } from '../command.js';
import { readFlagText, readTextInput } from '../input-file.js';
import { refuseExisting, writeOutput } from '../output-file.js';

/** Certificates are public: readable by the services that present them. */
const CERTIFICATE_MODE = 0o644;

export const enrollCommand: Command = {
  usage: `tpm-jwt enroll --server URL --key KEYREF --subject DN [--san dns:NAME|uri:URI|ip:ADDRESS ...]
               [--out-dir D] [--force] [--ca-cert F] [--ek-chain chain.pem] [--ak-type rsa|ecc]
               [--ak-handle HANDLE] [--auth-env VAR]
       tpm-jwt enroll --renew --server URL --key KEYREF --subject DN [--san ...] [--out-dir D] [--ca-cert F]

Enrolls the key with an enrollment server (tpm-jwt serve-enrollment, or your service
around createEnrollmentHandler): attests the key (TPM2_Certify, the EK certificates),
sends the attestation with a certification request for --subject, answers the server's
credential-activation challenge (TPM2_ActivateCredential), and writes what the server's
CA issued to --out-dir (default .): device.pem, the key's certificate, and chain.pem, the
certificates to send after it (mode 0644: nothing secret). Existing files are kept unless
--force. The server must be https (http only on loopback); --ca-cert replaces the
system's roots for it. A refusal is ERR_ENROLLMENT_REFUSED with the server's reason.

--renew renews the certificate in --out-dir before it expires (run it from a timer): a new
request for the same key, over mutual TLS with the current certificate and no new
attestation, and the files replaced. A server that wants a fresh attestation says so:
enroll again (with --force).

  tpm-jwt enroll --server https://enroll.example.com/v1/enroll --key 0x81008001 \\
    --subject CN=device-42 --out-dir /etc/tpm-jwt
  tpm-jwt enroll --renew --server https://enroll.example.com/v1/enroll --key 0x81008001 \\
    --subject CN=device-42 --out-dir /etc/tpm-jwt`,
  options: {
    server: { type: 'string' },
    key: { type: 'string' },
    subject: { type: 'string' },
    san: { type: 'string', multiple: true },
    'out-dir': { type: 'string' },
    force: { type: 'boolean' },
    'ca-cert': { type: 'string' },
    'ek-chain': { type: 'string' },
    'ak-type': { type: 'string' },
    'ak-handle': { type: 'string' },
    'auth-env': { type: 'string' },
    renew: { type: 'boolean' },
  },
  async run(values, io) {
    const server = required(values, 'server');
    const ref = required(values, 'key');
    const subject = required(values, 'subject');
    const outDir = path.resolve(optional(values, 'out-dir') ?? '.');
    const force = values['force'] === true;
    const files = { certificate: path.join(outDir, 'device.pem'), chain: path.join(outDir, 'chain.pem') };
    const renew = values['renew'] === true;
    const text = (flag: string, what: string) => readFlagText(values, flag, what);
    const ca = await text('ca-cert', 'CA certificate');
    const auth = authFromEnv(values, io.env);
    const sans = values['san'] as string[] | undefined;
    const request = {
      ...tpmOptions(values),
      server,
      key: ref,
      subject,
      ...(sans !== undefined && { subjectAltNames: sans }),
      ...(auth !== undefined && { auth }),
      ...(ca !== undefined && { ca }),
    };
    if (renew) {
      const misplaced = ['ek-chain', 'ak-type', 'ak-handle', 'force'].find((flag) => values[flag] !== undefined);
      if (misplaced !== undefined) throw new UsageError(`--${misplaced} does not go with --renew`);
      const renewed = await renewEnrollment({
        ...request,
        certificate: await readTextInput(files.certificate, { what: 'current certificate' }),
        chain: await readTextInput(files.chain, { what: 'current chain' }),
      });
      // The renewal replaces the files it renews.
      await writeOutput(files.certificate, renewed.certificate, true, CERTIFICATE_MODE);
      await writeOutput(files.chain, renewed.chain, true, CERTIFICATE_MODE);
      io.err(`renewed ${files.certificate} (valid to ${new X509Certificate(renewed.certificate).validTo})\n`);
      return;
    }
    // Refused before the TPM works: an existing certificate is kept.
    await refuseExisting(Object.values(files), force);
    const ekChain = await text('ek-chain', 'EK chain');
    const issued = await enroll({ ...request, ...akOptions(values), ...(ekChain !== undefined && { ekChain }) });
    await mkdir(outDir, { recursive: true });
    await writeOutput(files.certificate, issued.certificate, force, CERTIFICATE_MODE);
    await writeOutput(files.chain, issued.chain, force, CERTIFICATE_MODE);
    // The libraries read the files from anywhere: a key file is named absolutely.
    const keyRef = 'path' in parseKeyRef(ref) ? path.resolve(ref) : ref;
    io.err(`wrote ${files.certificate} and ${files.chain}\n`);
    io.out(
      'next, for X.509 Workload Identity Federation (the trust anchor is your CA root):\n' +
        `tpm-jwt wif-config --x509 --key ${keyRef} --cert ${files.certificate} --chain ${files.chain} ` +
        '--trust-anchor ROOT.pem --project-number N --pool P --provider V\n',
    );
  },
};
