import { readFile } from 'node:fs/promises';

import { writeFileAtomic } from '../../atomic-file.js';
import { TpmJwtError } from '../../errors.js';
import { createActivationChallenge } from '../../attest/challenge.js';
import { verifyAttestation } from '../../attest/verify.js';
import { parseNonce } from '../../tpm/attestation-format.js';
import { flagValue, optional, required, UsageError } from '../args.js';
import { json, type Command } from '../command.js';

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new TpmJwtError('ERR_INVALID_ARGUMENT', `cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

export const verifyAttestationCommand: Command = {
  usage: `tpm-jwt verify-attestation ATTESTATION --ca roots.pem [--nonce HEX]
        [--challenge challenge.json --activation activation.json]
tpm-jwt verify-attestation ATTESTATION --ca roots.pem --challenge-out challenge.json [--ek rsa|ecc]

Checks an attestation from \`tpm-jwt attest\`: the EK certificate chains to --ca, the
AK is bound to that TPM (credential activation, or a platform AK certificate), the AK
is a restricted signing key, the TPM signed the certify info, its qualifying data is
--nonce (or binds the document's kid and email), the certified Name is the key's, and
the key was made in the TPM and cannot leave it. Prints the verdict as JSON (ok, each
check's reason, the key's JWK) and exits 1 when a check fails.

Credential activation, in three steps:
  tpm-jwt verify-attestation attestation.json --ca roots.pem --challenge-out challenge.json
  tpm-jwt attest --activate challenge.json --out activation.json            # on the device
  tpm-jwt verify-attestation attestation.json --ca roots.pem --challenge challenge.json --activation activation.json
Keep your own challenge.json: the answer is checked against it.`,
  positionals: true,
  options: {
    ca: { type: 'string' },
    nonce: { type: 'string' },
    challenge: { type: 'string' },
    activation: { type: 'string' },
    'challenge-out': { type: 'string' },
    ek: { type: 'string' },
  },
  async run(values, io, positionals) {
    if (positionals.length !== 1) throw new UsageError('give one ATTESTATION file');
    const challengeOut = optional(values, 'challenge-out');
    const ek = optional(values, 'ek');
    const challenge = optional(values, 'challenge');
    const activation = optional(values, 'activation');
    const nonce = optional(values, 'nonce');
    if (challengeOut !== undefined) {
      if (challenge !== undefined || activation !== undefined || nonce !== undefined) {
        throw new UsageError('--challenge-out makes a challenge; it takes no --challenge, --activation or --nonce');
      }
      if (ek !== undefined && ek !== 'rsa' && ek !== 'ecc') throw new UsageError('--ek must be rsa or ecc');
    } else if (ek !== undefined) {
      throw new UsageError('--ek applies to --challenge-out');
    }
    if ((challenge === undefined) !== (activation === undefined)) {
      throw new UsageError('give --challenge and --activation together');
    }
    const nonceBytes = nonce === undefined ? undefined : flagValue('nonce', nonce, parseNonce);
    const attestation = await readText(positionals[0]!, 'attestation');
    const roots = await readText(required(values, 'ca'), 'CA file');

    if (challengeOut !== undefined) {
      const made = createActivationChallenge(attestation, { roots, ...(ek === 'rsa' || ek === 'ecc' ? { ek } : {}) });
      await writeFileAtomic(challengeOut, json(made), { force: true });
      io.err(`wrote ${challengeOut}: send it to the device (tpm-jwt attest --activate), keep this copy\n`);
      return;
    }
    const verdict = verifyAttestation(attestation, {
      roots,
      ...(nonceBytes !== undefined && { nonce: nonceBytes }),
      ...(challenge !== undefined && {
        activation: {
          challenge: await readText(challenge, 'challenge'),
          response: await readText(activation!, 'activation response'),
        },
      }),
    });
    io.out(json(verdict));
    if (!verdict.ok) {
      const failed = verdict.reasons.filter((r) => !r.ok).map((r) => `${r.check}: ${r.detail}`);
      throw new TpmJwtError('ERR_INVALID_ARGUMENT', `attestation rejected: ${failed.join('; ')}`);
    }
  },
};
