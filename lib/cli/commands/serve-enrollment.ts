import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

import { certificateAuthority, type CertificateAuthority } from '../../enroll/certificate-authority.js';
import { googleCasAuthority } from '../../enroll/google-cas.js';
import { inventoryPolicy } from '../../enroll/inventory.js';
import { createEnrollmentHandler } from '../../enroll/handler.js';
import { messageWithCauses } from '../../errors.js';
import { parseKeyRef } from '../../tpm/handle.js';
import { isKeyFilePem } from '../../tpm/key-file.js';
import { loadKeyRef } from '../../tpm/key-ref.js';
import { keyUse, listenAddress, optional, required, UsageError } from '../args.js';
import { untilSignalled, withTpm, type Command } from '../command.js';
import { readFlagText, readTextInput } from '../input-file.js';

/** Where the sealing key is when no --sealing-key-file names one. */
const SEALING_KEY_ENV = 'TPM_JWT_ENROLLMENT_SEALING_KEY';

export const serveEnrollment: Command = {
  usage: `tpm-jwt serve-enrollment --ca-roots roots.pem [--ak-ca R] (--inventory F | --allow-any-tpm)
               (--ca-cert ca.pem --ca-key ca.key|KEYREF [--ca-chain F] | --cas projects/P/locations/L/caPools/POOL
               [--cas-template T]) [--sealing-key-file F] [--lifetime DAYS] [--listen 127.0.0.1:8443]
               [--tls-cert F --tls-key F] [--auth-env VAR]

An enrollment server for tpm-jwt enroll, at /v1/enroll: it issues a device certificate
(client authentication, --lifetime days, default 30) from --ca-cert to a key that a TPM
whose EK certificate chains to --ca-roots attested, after credential activation (or a
platform AK certificate under --ak-ca), and that --inventory lists (lines of an EK
certificate's SHA-256 fingerprint and the subject that device gets) or, with
--allow-any-tpm, any such TPM with the subject and names it asks for. --ca-key is the CA's
PEM private key, or a KEYREF (a handle or a TSS2 key file: the CA key in a TPM, with
--tcti and --auth-env); or Google Certificate Authority Service issues (--cas, with
Application Default Credentials; --cas-template names a certificate template). It keeps
no state: the challenge's answer travels sealed in a ticket, with the 32-byte key (base64
or hex) in --sealing-key-file or $${SEALING_KEY_ENV}; every replica with the same key
finishes any enrollment. With neither, the key is made at start, and only this process
can finish what it began. It serves https with --tls-cert and --tls-key, else http for a
TLS terminator in front of it (devices send only over https, or to loopback). Over https,
and with a CA of its own (not --cas), it renews (enroll --renew) a certificate that CA
issued, presented over mutual TLS, without a new attestation: give it a CA that issues
nothing else. It prints its URL; failures it does not explain to devices go to stderr.
SIGTERM or SIGINT stops it.

  tpm-jwt serve-enrollment --ca-roots tpm-vendor-roots.pem --inventory devices.txt --ca-cert issuing.pem \\
    --ca-key issuing.key --sealing-key-file /etc/tpm-jwt/sealing.key --listen 0.0.0.0:8443 \\
    --tls-cert tls.pem --tls-key tls.key`,
  options: {
    'ca-roots': { type: 'string' },
    'ak-ca': { type: 'string' },
    'ca-cert': { type: 'string' },
    'ca-key': { type: 'string' },
    'ca-chain': { type: 'string' },
    cas: { type: 'string' },
    'cas-template': { type: 'string' },
    'sealing-key-file': { type: 'string' },
    lifetime: { type: 'string' },
    listen: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'auth-env': { type: 'string' },
    inventory: { type: 'string' },
    'allow-any-tpm': { type: 'boolean' },
  },
  async run(values, io) {
    const text = (flag: string, what: string) => readFlagText(values, flag, what);
    const address = listenAddress(values, '127.0.0.1:8443');
    const caKey = optional(values, 'ca-key');
    const pool = optional(values, 'cas');
    if ((caKey === undefined) === (pool === undefined)) throw new UsageError('give --ca-key or --cas');
    const misplaced = (pool !== undefined ? ['ca-cert', 'ca-chain'] : ['cas-template']).find(
      (flag) => values[flag] !== undefined,
    );
    if (misplaced !== undefined) {
      throw new UsageError(`--${misplaced} ${pool !== undefined ? 'does not go with' : 'goes with'} --cas`);
    }
    const tls = { cert: await text('tls-cert', 'TLS certificate'), key: await text('tls-key', 'TLS key') };
    if ((tls.cert === undefined) !== (tls.key === undefined)) throw new UsageError('give --tls-cert with --tls-key');
    let sealingKey: string | Uint8Array | undefined =
      (await text('sealing-key-file', 'sealing key')) ?? (io.env[SEALING_KEY_ENV] || undefined);
    if (sealingKey === undefined) {
      sealingKey = randomBytes(32);
      io.err(
        `no --sealing-key-file or ${SEALING_KEY_ENV}: a key of this process's own, so only it finishes the ` +
          'enrollments it begins (one replica only)\n',
      );
    }
    const lifetime = optional(values, 'lifetime') ?? '30';
    if (!/^[1-9][0-9]{0,4}$/.test(lifetime)) throw new UsageError('--lifetime is whole days, 1 to 99999');
    const inventory = await text('inventory', 'inventory');
    if ((inventory === undefined) === (values['allow-any-tpm'] !== true)) {
      throw new UsageError(
        'give --inventory (the TPMs that may enroll, and their subjects) or --allow-any-tpm (any TPM under ' +
          '--ca-roots, with the subject it asks for)',
      );
    }
    const akRoots = await text('ak-ca', 'AK roots');
    const chain = await text('ca-chain', 'CA chain');
    const common = {
      ekRoots: await readTextInput(required(values, 'ca-roots'), { what: 'EK roots' }),
      ...(akRoots !== undefined && { akRoots }),
      sealingKey,
      lifetimeSeconds: Number(lifetime) * 86_400,
      allow: inventory !== undefined ? inventoryPolicy(inventory) : () => true,
      onError: (err: unknown) => io.err(`${JSON.stringify({ refused: 'internal', error: messageWithCauses(err) })}\n`),
    };
    const serve = async (ca: CertificateAuthority, renewRoots?: string) => {
      const handler = createEnrollmentHandler({ ...common, ca, ...(renewRoots !== undefined && { renewRoots }) });
      // A client certificate is asked for, not required: renewals present one, enrollments do not.
      const server: Server =
        tls.cert !== undefined
          ? createHttpsServer({ cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: false }, handler)
          : createHttpServer(handler);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(address.port, address.host, resolve);
      });
      const { port } = server.address() as AddressInfo;
      const host = address.host.includes(':') ? `[${address.host}]` : address.host;
      io.out(`${tls.cert !== undefined ? 'https' : 'http'}://${host}:${port}/v1/enroll\n`);
      await untilSignalled();
      await new Promise((resolve) => server.close(resolve));
    };
    if (pool !== undefined) {
      const template = optional(values, 'cas-template');
      await serve(
        googleCasAuthority({ caPool: pool, ...(template !== undefined && { certificateTemplate: template }) }),
      );
      return;
    }
    const certificate = await readTextInput(required(values, 'ca-cert'), { what: 'CA certificate' });
    const chainOption = chain !== undefined ? { chain } : {};
    // Renewals present a certificate this CA issued: the CA certificate alone is their root.
    const renewRoots = certificate;
    // A handle or a TSS2 key file is a key in the TPM; any other file, a PEM private key.
    const ref = parseKeyRef(caKey!);
    const pemKey = 'path' in ref ? await readTextInput(ref.path, { what: 'CA key' }) : undefined;
    if (pemKey !== undefined && !isKeyFilePem(pemKey)) {
      await serve(certificateAuthority({ certificate, key: pemKey, ...chainOption }), renewRoots);
      return;
    }
    const use = keyUse(values, io.env);
    await withTpm(values, async (tpm) =>
      serve(certificateAuthority({ certificate, key: await loadKeyRef(tpm, caKey!, use), ...chainOption }), renewRoots),
    );
  },
};
