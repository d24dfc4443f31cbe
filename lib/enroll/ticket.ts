/**
 * The enrollment server's only memory: what it expects the device to answer, sealed
 * (AES-256-GCM) into an opaque ticket the device sends back with its answer. Any replica
 * holding the same sealing key finishes any enrollment; the ticket expires, is bound to
 * the attestation and request it was made for, and is taken once per replica.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

import { invalidArgument } from '../errors.js';
import { ENROLLMENT_REFUSED } from './refusal.js';

const TICKET_LABEL = Buffer.from('tpm-jwt-enrollment-ticket/1');
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What a ticket holds. */
export interface TicketContents<T> {
  /** Unique per ticket: what replay protection remembers. */
  id: string;
  /** Seconds since the epoch after which the ticket is refused. */
  exp: number;
  /** SHA-256 (hex) of what the ticket was made for: the same must come back with it. */
  binding: string;
  /** The sealed state. */
  state: T;
}

/** The SHA-256 (hex) binding of the JSON of each part, in order. */
export function bindingOf(...parts: unknown[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(JSON.stringify(part) ?? 'undefined').update('\0');
  return hash.digest('hex');
}

/**
 * The 32-byte sealing key, given as base64 or hex text (from an environment variable or
 * a file's first line) or as bytes. Throws ERR_INVALID_ARGUMENT for anything else.
 */
export function sealingKey(value: string | Uint8Array): Buffer {
  let key: Buffer;
  if (typeof value === 'string') {
    const text = value.trim();
    // Strict forms only: Node's base64 decoder skips what it does not know, so a passphrase
    // could pass for a key.
    if (/^[0-9a-f]{64}$/i.test(text)) key = Buffer.from(text, 'hex');
    else if (/^[A-Za-z0-9+/]{43}=$/.test(text)) key = Buffer.from(text, 'base64');
    else key = Buffer.alloc(0);
  } else {
    key = Buffer.from(value);
  }
  if (key.length !== 32) throw invalidArgument('the sealing key must be 32 bytes (64 hex digits, or base64)');
  return key;
}

/** A ticket for `state`, valid `lifetimeSeconds` from now, bound to `binding`. */
export function sealTicket<T>(key: Buffer, state: T, binding: string, lifetimeSeconds: number): string {
  const contents: TicketContents<T> = {
    id: randomBytes(16).toString('hex'),
    exp: Math.floor(Date.now() / 1000) + lifetimeSeconds,
    binding,
    state,
  };
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(TICKET_LABEL);
  const sealed = Buffer.concat([cipher.update(JSON.stringify(contents)), cipher.final()]);
  return Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
}

/** Why a ticket is refused: the enrollment must start again. */
const refused = (why: string) => ENROLLMENT_REFUSED(`ticket: ${why}`);

/**
 * What `ticket` holds, when it was sealed with `key`, has not expired and is bound to
 * `binding`. Throws ERR_ENROLLMENT_REFUSED otherwise (a ticket from another key or
 * altered in any bit does not open).
 */
export function openTicket<T>(key: Buffer, ticket: unknown, binding: string): TicketContents<T> {
  if (typeof ticket !== 'string' || !/^[A-Za-z0-9_-]{40,8192}$/.test(ticket)) throw refused('malformed');
  const bytes = Buffer.from(ticket, 'base64url');
  if (bytes.length < IV_BYTES + TAG_BYTES + 2) throw refused('malformed');
  let contents: TicketContents<T>;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES)).setAAD(TICKET_LABEL);
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    const plain = Buffer.concat([
      decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)),
      decipher.final(),
    ]);
    contents = JSON.parse(plain.toString('utf8')) as TicketContents<T>;
  } catch {
    throw refused("it does not open with this server's sealing key (altered, or sealed elsewhere)");
  }
  if (!(contents.exp * 1000 > Date.now())) throw refused('expired: start the enrollment again');
  if (contents.binding !== binding) throw refused('made for another attestation or request');
  return contents;
}

/**
 * Ticket ids taken on this replica, until they expire: a replayed ticket is refused here.
 * Across replicas a ticket could be taken once more within its lifetime, for the same
 * attested key and request only.
 */
export class TakenTickets {
  readonly #taken = new Map<string, number>();
  readonly #max: number;

  constructor(max = 100_000) {
    this.#max = max;
  }

  /** Takes `contents`' id; throws ERR_ENROLLMENT_REFUSED when it was taken before (or too many are open). */
  take(contents: { id: string; exp: number }): void {
    const now = Date.now() / 1000;
    if (this.#taken.size >= this.#max) {
      for (const [id, exp] of this.#taken) if (exp <= now) this.#taken.delete(id);
    }
    if (this.#taken.has(contents.id)) throw refused('already used: a replay');
    if (this.#taken.size >= this.#max) throw ENROLLMENT_REFUSED('too many enrollments in flight: try again later');
    this.#taken.set(contents.id, contents.exp);
  }
}
