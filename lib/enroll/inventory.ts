/**
 * A device inventory as an enrollment policy: which TPMs may enroll (by the SHA-256
 * fingerprint of an EK certificate) and the one subject each gets. A TPM maker's root
 * vouches for every TPM it made; the inventory says which of them are yours, and who each is.
 */
import { invalidArgument } from '../errors.js';
import { distinguishedName, nameText } from '../tpm/x509.js';
import type { EnrollingDevice } from './handler.js';

/** A SHA-256 fingerprint as node:crypto prints it (fingerprint256): uppercase hex pairs and colons. */
function fingerprint(text: string): string | undefined {
  const hex = text.replace(/:/g, '').toUpperCase();
  return /^[0-9A-F]{64}$/.test(hex) ? hex.match(/../g)!.join(':') : undefined;
}

/**
 * The policy for `text`: one device per line, `FINGERPRINT SUBJECT` (the SHA-256
 * fingerprint of the TPM's EK certificate, as `openssl x509 -fingerprint -sha256` prints
 * it, then the RFC 4514 subject its certificate must have); blank lines and `#` comments
 * are skipped. A device is allowed when the EK certificate it proved is listed, it asks
 * for that subject, and for no alternative names. A renewal is allowed while its subject
 * is still listed. Throws ERR_INVALID_ARGUMENT naming a line it cannot read.
 */
export function inventoryPolicy(text: string): (device: EnrollingDevice) => boolean | string {
  const subjects = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const match = /^(\S+)\s+(\S.*)$/.exec(line);
    const print = match && fingerprint(match[1]!);
    if (!print) throw invalidArgument(`inventory line ${i + 1}: expected SHA256-FINGERPRINT SUBJECT`);
    try {
      subjects.set(print, nameText(distinguishedName(match[2]!)));
    } catch (err) {
      throw invalidArgument(`inventory line ${i + 1}: ${(err as Error).message}`);
    }
  });
  const listed = new Set(subjects.values());
  return (device) => {
    if (device.requestedAltNames.length > 0) return 'the inventory gives no subject alternative names';
    if (device.renewing) return listed.has(device.requestedSubject) || 'its subject is no longer in the inventory';
    const subject = device.ekCertificates.map((c) => subjects.get(c.fingerprint256)).find((s) => s !== undefined);
    if (subject === undefined) return 'its EK certificate is not in the inventory';
    if (subject !== device.requestedSubject) return `the inventory gives it the subject ${subject}`;
    return true;
  };
}
