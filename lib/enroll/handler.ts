/**
 * The enrollment server: a plain `(req, res)` handler for node:http, Express or Cloud Run
 * that turns a TPM attestation and a certification request into a device certificate.
 *
 *   POST .../attest    { attestation, csr }                    -> { challenge, ticket }
 *   POST .../activate  { attestation, csr, ticket, response }  -> { certificate, chain }
 *   POST .../renew     { csr }, over mutual TLS with the current certificate -> { certificate, chain }
 *
 * Before issuing it checks the attestation (every check of verifyAttestation, the AK
 * bound by credential activation or a platform AK certificate), the activation answer,
 * that the request's signature verifies and its key is the attested key, and the policy.
 * It holds no state: what it expects back is sealed in the ticket (ticket.ts), so any
 * replica with the same sealing key finishes any enrollment. A platform AK certificate
 * (GCE) under `akRoots` binds the AK at once: `attest` then answers with the certificate.
 * Nothing here loads the native addon; a TPM CA key is the caller's own.
 */
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';

import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, GeneralName, id_ce_subjectAltName, Name, SubjectAlternativeName } from '@peculiar/asn1-x509';

import { createActivationChallenge } from '../attest/challenge.js';
import { chainToRoots, rootCertificates, type Roots } from '../attest/certificates.js';
import { decodeOnce, readAttestation, trustedEks } from '../attest/document.js';
import { verifyAttestation, type AttestationVerdict } from '../attest/verify.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import type { PublicJwk } from '../jwk.js';
import { distinguishedName, generalNameText, nameText } from '../tpm/x509.js';
import { MAX_DOCUMENT_SIZE, type ActivationExpectation } from '../wire/attestation-format.js';
import { publicKeyOf } from '../wire/public-key.js';
import { parsePublic } from '../wire/tpm-structures.js';
import { CLIENT_AUTH, type CertificateAuthority, type IssueRequest } from './certificate-authority.js';
import { readCertificationRequest, type ReadRequest } from './certification-request.js';
import { ENROLLMENT_REFUSED } from './refusal.js';
import { bindingOf, openTicket, sealingKey, sealTicket, TakenTickets } from './ticket.js';

/** What the policy is shown: the device as every check established it. */
export interface EnrollingDevice {
  /** The attested key. */
  jwk: PublicJwk;
  /**
   * The EK certificate the device proved its TPM holds: the one credential activation was
   * encrypted to, or on the platform AK certificate path those naming the AK certificate's
   * subject. Certificates a document merely carries are not shown: EK certificates are
   * public. Match an inventory on them (fingerprint256).
   */
  ekCertificates: X509Certificate[];
  /** The request's subject, RFC 4514 text (nameText). */
  requestedSubject: string;
  /** The request's subject alternative names, as `dns:NAME`, `uri:URI`, `ip:ADDRESS` (others by their kind). */
  requestedAltNames: string[];
  /** A renewal: the certificate the device presented over mutual TLS (no EK certificate is shown then). */
  renewing?: X509Certificate;
}

export interface EnrollmentHandlerOptions {
  /** Trust anchors for EK certificates (the TPM makers' roots). */
  ekRoots: Roots;
  /** Trust anchors for a platform's AK certificate (GCE's EK/AK CA). */
  akRoots?: Roots;
  /** The AES-256-GCM key tickets are sealed with: 32 bytes (base64 or hex, or bytes); the same on every replica. */
  sealingKey: string | Uint8Array;
  /** Who issues the certificates (certificateAuthority, or your own). */
  ca: CertificateAuthority;
  /** Certificate lifetime, seconds; default 30 days. */
  lifetimeSeconds?: number;
  /** How long a device has to answer the challenge, seconds; default 300. */
  ticketLifetimeSeconds?: number;
  /**
   * After every check passed: true to issue, false or a reason (shown to the device) to
   * refuse; asked before the challenge and again before issuing. A device inventory, an
   * allow-list of EK serials, the subject each device may have. Required: a TPM maker's
   * root vouches for every TPM it made, so `() => true` takes any of them, with the
   * subject it asks for.
   */
  allow: (device: EnrollingDevice) => boolean | string | Promise<boolean | string>;
  /** The certificate's subject (RFC 4514 text); default the request's. */
  subject?: (device: EnrollingDevice) => string | Promise<string>;
  /**
   * Renewal (POST .../renew with a new request, over mutual TLS with the current
   * certificate): the roots a presented certificate must chain to (your CA's
   * certificate). Without them, or with `renewal: 'attestation'`, a device renews by
   * enrolling again, attestation and all.
   */
  renewRoots?: Roots;
  renewal?: 'certificate' | 'attestation';
  /** Told each failure the device is not told the detail of (the CA's, say): for your logs. */
  onError?: (err: unknown) => void;
}

/** The most a request body may weigh: an attestation and a certification request, each within its own limit. */
const MAX_BODY = MAX_DOCUMENT_SIZE + 32 * 1024;
const DEFAULT_LIFETIME = 30 * 86_400;
const DEFAULT_TICKET_LIFETIME = 300;

/** What a ticket seals: the answer credential activation must give. */
interface TicketState {
  expected: ActivationExpectation;
}

/** A client error with its HTTP status. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, 'ERR_INVALID_ARGUMENT', `the body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'ERR_INVALID_ARGUMENT', 'the body is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'ERR_INVALID_ARGUMENT', 'the body is not a JSON object');
  }
  return body as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

/** The failing checks of a verdict, in one line; `except` is left out. */
function failures(verdict: AttestationVerdict, except?: string): string {
  return verdict.reasons
    .filter((r) => !r.ok && r.check !== except)
    .map((r) => `${r.check}: ${r.detail}`)
    .join('; ');
}

/**
 * The certificates the TLS client presented, leaf first (what node:tls kept of its chain),
 * or undefined on a connection without one (plain http, or no certificate asked for).
 */
function presentedChain(req: IncomingMessage): X509Certificate[] | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  const peer = socket.getPeerX509Certificate?.();
  if (!peer) return undefined;
  const chain = [peer];
  let detailed = socket.getPeerCertificate?.(true);
  // node:tls links each certificate to its issuer; a self-issued one links to itself.
  for (let depth = 0; detailed?.issuerCertificate && detailed.issuerCertificate !== detailed && depth < 8; depth++) {
    detailed = detailed.issuerCertificate;
    chain.push(new X509Certificate(detailed.raw));
  }
  return chain;
}

/** The subject and subject alternative names of a certificate: what a renewal keeps. */
function identityOf(certificate: X509Certificate): { subject: Name; altNames: GeneralName[] } {
  const tbs = AsnConvert.parse(certificate.raw, Certificate).tbsCertificate;
  const san = tbs.extensions?.find((e) => e.extnID === id_ce_subjectAltName);
  return { subject: tbs.subject, altNames: san ? [...AsnConvert.parse(san.extnValue, SubjectAlternativeName)] : [] };
}

/** The EK certificates whose key a credential activation is encrypted to. */
function encryptedTo(expected: ActivationExpectation): (ek: X509Certificate) => boolean {
  return (ek) => ek.publicKey.export({ type: 'spki', format: 'der' }).toString('base64') === expected.ekPublicKey;
}

/**
 * A request the device sent, read (readCertificationRequest) and holding no extension but
 * names: a CA that copies what a request asks for (as Certificate Authority Service may)
 * must not be asked for a CA flag or a key usage.
 */
function checkedRequest(csr: unknown): ReadRequest {
  const request = readCertificationRequest(csr);
  const asked = request.extensions.filter((oid) => oid !== id_ce_subjectAltName);
  if (asked.length > 0) throw ENROLLMENT_REFUSED(`the csr asks for extensions ${asked.join(', ')}: names only`);
  return request;
}

/** A whole number of seconds within bounds, or ERR_INVALID_ARGUMENT naming the option. */
function seconds(value: number, name: string, min: number): number {
  if (!Number.isInteger(value) || value < min || value > 100 * 365 * 86_400) {
    throw invalidArgument(`${name} must be a whole number of seconds, at least ${min}`);
  }
  return value;
}

/** The server's own failure: the device is told to try again, the detail goes to onError. */
class ServerFault extends Error {
  constructor(readonly detail: unknown) {
    super('the server could not issue');
  }
}

/**
 * The enrollment handler. Throws ERR_INVALID_ARGUMENT at once for options it cannot run
 * with (no roots, a sealing key that is not 32 bytes, no CA, no policy).
 */
export function createEnrollmentHandler(
  options: EnrollmentHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const ekRoots = rootCertificates(options.ekRoots, 'ekRoots');
  const akRoots = options.akRoots === undefined ? undefined : rootCertificates(options.akRoots, 'akRoots');
  const key = sealingKey(options.sealingKey);
  if (typeof options.ca?.issue !== 'function') throw invalidArgument('ca must be a certificate authority');
  if (typeof options.allow !== 'function') {
    throw invalidArgument(
      "allow is required: a TPM maker's root vouches for every TPM it made (() => true to take any)",
    );
  }
  const lifetime = seconds(options.lifetimeSeconds ?? DEFAULT_LIFETIME, 'lifetimeSeconds', 60);
  const ticketLifetime = seconds(options.ticketLifetimeSeconds ?? DEFAULT_TICKET_LIFETIME, 'ticketLifetimeSeconds', 0);
  const taken = new TakenTickets();
  const renewRoots = options.renewRoots === undefined ? undefined : rootCertificates(options.renewRoots, 'renewRoots');

  /**
   * The attestation (decoded once for every check of this request) and the request,
   * checked against it: its key must be the attested key.
   */
  function requestFor(body: Record<string, unknown>) {
    const attestation = decodeOnce(body['attestation']);
    const read = readAttestation(attestation);
    const request = checkedRequest(body['csr']);
    const key = publicKeyOf(parsePublic(read.keyPublic, 'the attested key'));
    if (!key?.equals(request.publicKey)) throw ENROLLMENT_REFUSED('the csr is not for the attested key');
    const trusted = trustedEks(read, ekRoots, new Date()).trusted.map((ek) => ek.cert);
    /** The device, shown the EK certificates that `proven` keeps of those that chain to the roots. */
    const device = (proven: (ek: X509Certificate) => boolean): EnrollingDevice => ({
      jwk: key.export({ format: 'jwk' }) as PublicJwk,
      ekCertificates: trusted.filter(proven),
      requestedSubject: nameText(request.subject),
      requestedAltNames: request.altNames.map(generalNameText),
    });
    return { attestation, read, request, device };
  }

  /** The policy's word on `device`: ERR_ENROLLMENT_REFUSED with its reason unless it allows. */
  async function admit(device: EnrollingDevice): Promise<void> {
    let allowed: boolean | string;
    try {
      allowed = await options.allow(device);
    } catch (err) {
      throw new ServerFault(err);
    }
    if (allowed !== true) {
      throw ENROLLMENT_REFUSED(`the policy refuses this device${typeof allowed === 'string' ? `: ${allowed}` : ''}`);
    }
  }

  /**
   * The policy allowed it: the CA (with the policy's subject, unless a renewal keeps the
   * one it has). What goes wrong from here is the server's, not the device's.
   */
  async function issue(device: EnrollingDevice, request: IssueRequest['request'], renewal = false) {
    try {
      const subject = !renewal && options.subject ? distinguishedName(await options.subject(device)) : undefined;
      return await options.ca.issue({ request, ...(subject !== undefined && { subject }), lifetimeSeconds: lifetime });
    } catch (err) {
      if (err instanceof TpmJwtError && err.code === 'ERR_ENROLLMENT_REFUSED') throw err;
      throw new ServerFault(err);
    }
  }

  async function attest(body: Record<string, unknown>): Promise<unknown> {
    const { attestation, read, request, device } = requestFor(body);
    const verdict = verifyAttestation(attestation, { roots: ekRoots, ...(akRoots && { akRoots }) });
    const failing = failures(verdict, 'ak-bound');
    if (failing !== '') throw ENROLLMENT_REFUSED(`the attestation fails: ${failing}`);
    // A platform AK certificate bound the AK already (to the EK of the same subject): nothing to activate.
    if (verdict.ok) {
      const proven = device((ek) => ek.subject === read.akCertificate?.subject);
      await admit(proven);
      return issue(proven, request);
    }
    const { challenge, expected } = createActivationChallenge(attestation, { roots: ekRoots });
    // Asked before the device activates: one it refuses is told now. It is shown the EK the
    // challenge is encrypted to, which activation will prove.
    await admit(device(encryptedTo(expected)));
    const state: TicketState = { expected };
    const ticket = sealTicket(key, state, bindingOf(body['attestation'], body['csr']), ticketLifetime);
    return { challenge, ticket };
  }

  async function activate(body: Record<string, unknown>): Promise<unknown> {
    const contents = openTicket<TicketState>(key, body['ticket'], bindingOf(body['attestation'], body['csr']));
    const { attestation, request, device } = requestFor(body);
    const verdict = verifyAttestation(attestation, {
      roots: ekRoots,
      ...(akRoots && { akRoots }),
      activation: { expected: contents.state.expected, response: body['response'] },
    });
    if (!verdict.ok) throw ENROLLMENT_REFUSED(`the attestation fails: ${failures(verdict)}`);
    const proven = device(encryptedTo(contents.state.expected));
    await admit(proven);
    // Taken once every check passed: a wrong answer does not use the ticket up.
    taken.take(contents);
    return issue(proven, request);
  }

  /**
   * A renewal: the connection's client certificate was issued for client authentication
   * under the renewal roots (and TLS proved the device holds its key), the new request is
   * for the same key, and the new certificate keeps the presented one's subject and names.
   */
  async function renew(body: Record<string, unknown>, req: IncomingMessage): Promise<unknown> {
    if (!renewRoots || options.renewal === 'attestation') {
      throw ENROLLMENT_REFUSED('this server renews by a fresh attestation: enroll again');
    }
    const presented = presentedChain(req);
    if (!presented) throw ENROLLMENT_REFUSED('renewal needs mutual TLS with the current certificate');
    const [leaf, ...intermediates] = presented as [X509Certificate, ...X509Certificate[]];
    const trusted = chainToRoots(leaf, intermediates, renewRoots);
    if (!trusted.ok) throw ENROLLMENT_REFUSED(`the presented certificate is not this CA's: ${trusted.why}`);
    if (!(leaf.keyUsage ?? []).includes(CLIENT_AUTH)) {
      throw ENROLLMENT_REFUSED('the presented certificate is not for client authentication');
    }
    const request = checkedRequest(body['csr']);
    if (!leaf.publicKey.equals(request.publicKey)) throw ENROLLMENT_REFUSED('the csr is not for the presented key');
    // A renewal renews an identity: the request must name what the certificate names.
    const kept = identityOf(leaf);
    const der = (value: unknown) => Buffer.from(AsnConvert.serialize(value)).toString('hex');
    if (der(request.subject) !== der(kept.subject)) {
      throw ENROLLMENT_REFUSED(`a renewal keeps the subject ${nameText(kept.subject)}`);
    }
    if (request.altNames.map(der).join() !== kept.altNames.map(der).join()) {
      throw ENROLLMENT_REFUSED('a renewal keeps the subject alternative names of the certificate it renews');
    }
    const device: EnrollingDevice = {
      jwk: leaf.publicKey.export({ format: 'jwk' }) as PublicJwk,
      ekCertificates: [],
      requestedSubject: nameText(request.subject),
      requestedAltNames: request.altNames.map(generalNameText),
      renewing: leaf,
    };
    await admit(device);
    return issue(device, request, true);
  }

  const steps: Record<string, (body: Record<string, unknown>, req: IncomingMessage) => Promise<unknown>> = {
    attest,
    activate,
    renew,
  };

  return (req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    const name = path.slice(path.lastIndexOf('/') + 1);
    const step = Object.hasOwn(steps, name) ? steps[name] : undefined;
    if (!step) {
      const message = 'POST .../attest, .../activate or .../renew';
      return send(res, 404, { error: { code: 'ERR_INVALID_ARGUMENT', message } });
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return send(res, 405, { error: { code: 'ERR_INVALID_ARGUMENT', message: 'POST only' } });
    }
    readJson(req)
      .then((body) => step(body, req))
      .then(
        (answer) => send(res, 200, answer),
        (err: unknown) => {
          if (err instanceof HttpError) {
            return send(res, err.status, { error: { code: err.code, message: err.message } });
          }
          // What the device sent: a refusal (403) or a malformed document (400), in words it can show.
          if (err instanceof TpmJwtError && err.code === 'ERR_ENROLLMENT_REFUSED') {
            return send(res, 403, { error: { code: err.code, message: err.message } });
          }
          if (err instanceof TpmJwtError && err.code === 'ERR_INVALID_ARGUMENT') {
            return send(res, 400, { error: { code: err.code, message: err.message } });
          }
          // The CA, the policy, or something unforeseen: the device may try again; the detail stays here.
          options.onError?.(err instanceof ServerFault ? err.detail : err);
          send(res, 500, { error: { message: 'the server could not issue; try again later' } });
        },
      );
  };
}
