/**
 * A device inventory as an enrollment policy: which TPMs may enroll (by an EK
 * certificate's serial number) and the one subject each gets. A TPM maker's root vouches
 * for every TPM it made; the inventory says which of them are yours, and who each is.
 */
import { invalidArgument } from '../errors.js';
import { distinguishedName, nameText } from '../tpm/x509.js';
import type { EnrollingDevice } from './handler.js';

/** An EK serial as node:crypto prints it: uppercase hex, without leading zeros. */
const normal = (serial: string) => serial.replace(/^0+(?=.)/, '').toUpperCase();

/**
 * The policy for `text`: one device per line, `SERIAL SUBJECT` (the EK certificate's serial
 * number in hex, then the RFC 4514 subject its certificate must have); blank lines and `#`
 * comments are skipped. A device is allowed when one of its EK certificates is listed and
 * it asks for that subject; a renewal keeps the subject the CA issued. Throws
 * ERR_INVALID_ARGUMENT naming a line it cannot read.
 */
export function inventoryPolicy(text: string): (device: EnrollingDevice) => boolean | string {
  const subjects = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const match = /^([0-9A-Fa-f:]+)\s+(\S.*)$/.exec(line);
    if (!match) throw invalidArgument(`inventory line ${i + 1}: expected SERIAL SUBJECT`);
    let subject: string;
    try {
      subject = nameText(distinguishedName(match[2]!));
    } catch (err) {
      throw invalidArgument(`inventory line ${i + 1}: ${(err as Error).message}`);
    }
    subjects.set(normal(match[1]!.replace(/:/g, '')), subject);
  });
  return (device) => {
    if (device.renewing) return true;
    const listed = device.ekCertificates.map((c) => subjects.get(normal(c.serialNumber))).find((s) => s !== undefined);
    if (listed === undefined) return 'its EK certificate is not in the inventory';
    if (listed !== device.requestedSubject) return `the inventory gives it the subject ${listed}`;
    return true;
  };
}
