/**
 * Enrollment, the device's side: attest the TPM key, send the attestation with a
 * certification request for the key, answer the server's credential-activation
 * challenge, and receive the key's certificate and chain. Two round trips, one TPM2_Certify
 * and one TPM2_ActivateCredential. Renewal is one round trip over mutual TLS with the
 * current certificate.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { Agent } from 'node:https';

import { activateCredential, attestKey } from '../attest/index.js';
import type { AttestationKeyOptions, AttestationTpmOptions } from '../attest/device.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { isHttpsOrLoopback } from '../loopback.js';
import { postForJson } from '../post.js';
import { TpmTlsAgent } from '../tls/agent.js';
import { loadKeyRef } from '../tpm/key-ref.js';
import { usingTpm } from '../tpm/tpm.js';
import type { ActivationChallenge } from '../wire/attestation-format.js';
import { ENROLLMENT_REFUSED } from './refusal.js';

export interface EnrollOptions extends AttestationTpmOptions, AttestationKeyOptions {
  /** The enrollment handler's base URL: https (http only on loopback); attest and activate are below it. */
  server: string;
  /** KEYREF of the key to enroll. */
  key: string;
  /** The key's auth value. */
  auth?: string | Uint8Array;
  /** The certificate's subject, RFC 4514 text (the server's policy may replace it). */
  subject: string;
  /** Subject alternative names: `dns:NAME`, `uri:URI`, `ip:ADDRESS`. */
  subjectAltNames?: readonly string[];
  /** PEM intermediates of the EK certificates the TPM's NV lacks. */
  ekChain?: string;
  /** PEM roots to check the server against instead of the system's. */
  ca?: string;
}

export interface Enrollment {
  /** The key's certificate, PEM. */
  certificate: string;
  /** The certificates to send after it (the issuing CA first), PEM. */
  chain: string;
}

/** How a step reaches the server: its roots, or the agent that presents the current certificate. */
type Transport = { ca: string | undefined } | { agent: Agent };

/** The server's answer to one step; its refusal as ERR_ENROLLMENT_REFUSED with its reason. */
async function step(base: URL, name: string, body: unknown, transport: Transport): Promise<Record<string, unknown>> {
  const url = new URL(`${base.pathname.replace(/\/$/, '')}/${name}`, base);
  const answer = await postForJson(
    url,
    JSON.stringify(body),
    { headers: { 'content-type': 'application/json', accept: 'application/json' }, ...transport },
    'the enrollment server',
  );
  const parsed = (answer.json ?? {}) as { error?: { code?: unknown; message?: unknown } } & Record<string, unknown>;
  if (answer.status !== 200) {
    const message = typeof parsed.error?.message === 'string' ? parsed.error.message : answer.text.slice(0, 300);
    // A refusal (4xx) is the server's answer; a failure of its own (5xx) is worth a retry.
    const failure = `${url} answered ${answer.status}: ${message}`;
    throw answer.status >= 500 ? new TpmJwtError('ERR_TOKEN_EXCHANGE', failure) : ENROLLMENT_REFUSED(failure);
  }
  return parsed;
}

/**
 * Enrolls the key: its certificate from the server's CA. Throws ERR_ENROLLMENT_REFUSED
 * with the server's reason when it refuses; the TPM's errors as the TPM calls throw them.
 */
export async function enroll(options: EnrollOptions): Promise<Enrollment> {
  const base = serverUrl(options.server);
  const { server: _server, subject, subjectAltNames, ca, key, auth, ekChain, akType, akHandle, ...tpm } = options;
  const ak = { ...(akType !== undefined && { akType }), ...(akHandle !== undefined && { akHandle }) };
  const { csr, publicKey } = await usingTpm(tpm, async (opened) => {
    const loaded = await loadKeyRef(opened, key, auth !== undefined ? { auth } : {});
    const request = await loaded.csr({ subject, ...(subjectAltNames !== undefined && { subjectAltNames }) });
    return { csr: request, publicKey: loaded.publicKey };
  });
  const attestation = await attestKey({
    ...tpm,
    ...ak,
    key,
    ...(auth !== undefined && { auth }),
    ...(ekChain !== undefined && { ekChain }),
  });
  const first = await step(base, 'attest', { attestation, csr }, { ca });
  if (typeof first['certificate'] === 'string') return certificateOf(first, publicKey);
  if (typeof first['ticket'] !== 'string' || typeof first['challenge'] !== 'object') {
    throw ENROLLMENT_REFUSED('the server answered neither a certificate nor a challenge');
  }
  const response = await activateCredential(first['challenge'] as ActivationChallenge, { ...tpm, ...ak });
  const done = await step(base, 'activate', { attestation, csr, ticket: first['ticket'], response }, { ca });
  return certificateOf(done, publicKey);
}

/** The server's base URL: https, or http to loopback. */
function serverUrl(server: string): URL {
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw invalidArgument(`server ${server} is not a URL`);
  }
  if (!isHttpsOrLoopback(base)) throw invalidArgument('server must be https (http only on loopback)');
  return base;
}

export interface RenewOptions extends AttestationTpmOptions {
  /** The enrollment handler's base URL, https: renewal is over mutual TLS. */
  server: string;
  /** KEYREF of the enrolled key. */
  key: string;
  auth?: string | Uint8Array;
  /** The current certificate and its chain, PEM: presented over TLS with the key. */
  certificate: string;
  chain?: string;
  /** The new certificate's subject, RFC 4514 text. */
  subject: string;
  subjectAltNames?: readonly string[];
  /** PEM roots to check the server against instead of the system's. */
  ca?: string;
}

/**
 * Renews the key's certificate without a new attestation: a new request for the same key,
 * sent over mutual TLS with the current certificate (one TPM signature for the request,
 * one for the handshake). Throws ERR_ENROLLMENT_REFUSED with the server's reason (a
 * server that wants a fresh attestation says so: enroll again).
 */
export async function renewEnrollment(options: RenewOptions): Promise<Enrollment> {
  const base = serverUrl(options.server);
  if (base.protocol !== 'https:') throw invalidArgument('renewal is over mutual TLS: the server must be https');
  const { server: _server, key: ref, auth, certificate, chain, subject, subjectAltNames, ca, ...tpm } = options;
  return usingTpm(tpm, async (opened) => {
    const key = await loadKeyRef(opened, ref, auth !== undefined ? { auth } : {});
    const csr = await key.csr({ subject, ...(subjectAltNames !== undefined && { subjectAltNames }) });
    const agent = new TpmTlsAgent({
      key,
      certificate: certificate + (chain ?? ''),
      ...(ca !== undefined && { ca }),
      agent: { keepAlive: false },
    });
    try {
      return certificateOf(await step(base, 'renew', { csr }, { agent }), key.publicKey);
    } finally {
      agent.destroy();
    }
  });
}

/** The certificate and chain the server answered, the certificate checked to be for the key. */
function certificateOf(answer: Record<string, unknown>, key: KeyObject): Enrollment {
  const { certificate, chain } = answer;
  if (typeof certificate !== 'string' || typeof chain !== 'string') {
    throw ENROLLMENT_REFUSED('the server answered without a certificate and chain');
  }
  let forKey: boolean;
  try {
    forKey = new X509Certificate(certificate).publicKey.equals(key);
  } catch {
    forKey = false;
  }
  if (!forKey) throw ENROLLMENT_REFUSED('the server answered a certificate that is not for the key');
  return { certificate, chain };
}
