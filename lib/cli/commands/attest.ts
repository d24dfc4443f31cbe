import { parseNonce } from '../../wire/attestation-format.js';
import { activateCredential, attestKey, chainCertificates } from '../../attest/device.js';
import { parsePersistentHandle } from '../../tpm/handle.js';
import { akOptions } from '../ak-flags.js';
import { authFromEnv, flagValue, optional, required, UsageError, type Values } from '../args.js';
import { json, tpmOptions, type Command, type Io } from '../command.js';
import { handleInUse } from '../handle-in-use.js';
import { readInput, readTextInput } from '../input-file.js';
import { refuseExisting, writeOutput } from '../output-file.js';

/**
 * --out and --force, checked before the TPM work: --force replaces an existing --out
 * file, as everywhere (the object at --ak-handle is --replace-ak-handle's).
 */
async function outFile(values: Values): Promise<{ out?: string; force: boolean }> {
  const out = optional(values, 'out');
  const force = values['force'] === true;
  if (out === undefined) {
    if (force) {
      throw new UsageError(
        '--force replaces an existing --out file; to replace the object at --ak-handle, pass --replace-ak-handle',
      );
    }
    return { force };
  }
  await refuseExisting([out], force);
  return { out, force };
}

/** Writes a document to --out (mode 0600: an activation response holds the secret) or stdout. */
async function emit({ out, force }: { out?: string; force: boolean }, io: Io, document: unknown): Promise<void> {
  if (out === undefined) io.out(json(document));
  else await writeOutput(out, json(document), force);
}

export const attest: Command = {
  usage: `tpm-jwt attest --key KEYREF [--nonce HEX] [--kid KID] [--email EMAIL] [--ek-chain chain.pem]
               [--ak-type rsa|ecc] [--ak-handle HANDLE [--replace-ak-handle]] [--auth-env VAR]
               [--out attestation.json [--force]]
tpm-jwt attest --activate challenge.json|credential.bin [--ak-type rsa|ecc] [--ak-handle HANDLE]
               [--ek-handle HANDLE] [--out activation.json [--force]]

Certifies the key with an attestation key (AK) in the endorsement hierarchy
(TPM2_Certify) and writes the attestation: the certify info and signature, the AK's and
the key's public areas, and the EK certificates (RSA and ECC) and their chain from the
TPM's NV (--ek-chain adds intermediates), and a platform AK certificate where NV has
one (GCE). The qualifying data is --nonce, or a hash binding the kid (default: the key's
JWK thumbprint) and --email. The AK is made from the standard template and flushed, or
kept at --ak-handle and reused (a handle holding anything but that AK, an endorsement
primary of --ak-type's template, is refused unless --replace-ak-handle). NV indices that
cannot be read (unwritten, read-locked, policy-read) are skipped, with a note in the
attestation. --out writes mode 0600 and never replaces an existing file unless --force.

--activate answers the verifier's challenge (verify-attestation --challenge-out, or a
tpm2_makecredential file): the TPM recovers the secret only if it holds the EK and the AK.
It uses the AK this device's options name (the template's, or the one at --ak-handle) and
never creates, persists or evicts anything at a handle.

  tpm-jwt attest --key 0x81008001 --email sa@p.iam.gserviceaccount.com --out attestation.json
  tpm-jwt attest --activate challenge.json --out activation.json`,
  options: {
    key: { type: 'string' },
    nonce: { type: 'string' },
    kid: { type: 'string' },
    email: { type: 'string' },
    'ek-chain': { type: 'string' },
    'ak-type': { type: 'string' },
    'ak-handle': { type: 'string' },
    'ek-handle': { type: 'string' },
    'replace-ak-handle': { type: 'boolean' },
    force: { type: 'boolean' },
    'auth-env': { type: 'string' },
    activate: { type: 'string' },
    out: { type: 'string' },
  },
  async run(values, io) {
    const ak = akOptions(values);
    const activate = optional(values, 'activate');
    if (activate !== undefined) {
      for (const flag of ['key', 'nonce', 'kid', 'email', 'ek-chain', 'auth-env', 'replace-ak-handle']) {
        if (values[flag] !== undefined) throw new UsageError(`--${flag} does not apply to --activate`);
      }
      const ekHandle = optional(values, 'ek-handle');
      const options = {
        ...tpmOptions(values),
        ...ak,
        ...(ekHandle !== undefined && { ekHandle: flagValue('ek-handle', ekHandle, parsePersistentHandle) }),
      };
      const output = await outFile(values);
      await emit(output, io, await activateCredential(await readInput(activate, { what: 'challenge' }), options));
      return;
    }
    if (values['ek-handle'] !== undefined) throw new UsageError('--ek-handle applies to --activate');
    const key = required(values, 'key');
    const nonce = optional(values, 'nonce');
    const kid = optional(values, 'kid');
    const email = optional(values, 'email');
    const nonceBytes = nonce === undefined ? undefined : flagValue('nonce', nonce, parseNonce);
    const auth = authFromEnv(values, io.env);
    const chainFile = optional(values, 'ek-chain');
    const ekChain = chainFile === undefined ? undefined : await readTextInput(chainFile, { what: 'EK chain' });
    chainCertificates(ekChain, '--ek-chain');
    const output = await outFile(values);
    const document = await attestKey({
      ...tpmOptions(values),
      ...ak,
      key,
      ...(nonceBytes !== undefined && { nonce: nonceBytes }),
      ...(kid !== undefined && { kid }),
      ...(email !== undefined && { email }),
      ...(ekChain !== undefined && { ekChain }),
      ...(auth !== undefined && { auth }),
      force: values['replace-ak-handle'] === true,
    }).catch((err) =>
      ak.akHandle === undefined
        ? Promise.reject(err)
        : handleInUse(err, '--ak-handle', ak.akHandle, '--replace-ak-handle'),
    );
    await emit(output, io, document);
  },
};
