import { createActivationChallenge } from '../../attest/challenge.js';
import { parseNonce } from '../../wire/attestation-format.js';
import { rootCertificates } from '../../attest/certificates.js';
import { verifyAttestation, type AttestationVerdict } from '../../attest/verify.js';
import { TpmJwtError } from '../../errors.js';
import { flagValue, optional, required, UsageError } from '../args.js';
import { json, type Command } from '../command.js';
import { readTextInput } from '../input-file.js';
import { refuseExisting, writeOutput } from '../output-file.js';

/**
 * A failed ak-bound check with what the user can run next: the three steps of credential
 * activation, or --ak-ca for a platform AK certificate, whichever was not given.
 */
function withNextStep(reason: AttestationVerdict['reasons'][number], activation?: string, akCa?: string): string {
  if (reason.check !== 'ak-bound' || reason.ok || activation !== undefined) return reason.detail;
  const activate =
    'run credential activation (verify-attestation --challenge-out C --expected-out E, then attest --activate C ' +
    '--out A on the device, then verify-attestation --expected E --activation A)';
  const certificate = akCa === undefined ? '; or check a platform AK certificate with --ak-ca' : '';
  return `${reason.detail} (${activate}${certificate})`;
}

export const verifyAttestationCommand: Command = {
  usage: `tpm-jwt verify-attestation ATTESTATION --ca roots.pem [--ak-ca ak-roots.pem] [--nonce HEX]
        [--expected expected.json --activation activation.json]
tpm-jwt verify-attestation ATTESTATION --ca roots.pem --challenge-out challenge.json --expected-out expected.json
        [--ek rsa|ecc] [--force]

Checks an attestation from \`tpm-jwt attest\`: an EK certificate (by its extensions) chains
to --ca, the AK is bound to that TPM (credential activation, or a platform AK certificate
that chains to --ak-ca: --ca alone never vouches for an AK), the AK is a restricted
signing key, the TPM signed the certify info in the AK's scheme, its qualifying data is
--nonce (or binds the document's kid and email), the certified Name is the key's, and
the key was made in the TPM and cannot leave it. Prints the verdict as JSON (ok, each
check's reason, and when ok the key's JWK) and exits 1 when a check fails.

Credential activation, in three steps:
  tpm-jwt verify-attestation attestation.json --ca roots.pem \\
    --challenge-out challenge.json --expected-out expected.json
  tpm-jwt attest --activate challenge.json --out activation.json            # on the device
  tpm-jwt verify-attestation attestation.json --ca roots.pem --expected expected.json --activation activation.json
Send challenge.json to the device; keep expected.json (mode 0600) and never send it: the
answer is checked against it. Existing files are never replaced unless --force.`,
  positionals: true,
  options: {
    ca: { type: 'string' },
    'ak-ca': { type: 'string' },
    nonce: { type: 'string' },
    expected: { type: 'string' },
    activation: { type: 'string' },
    'challenge-out': { type: 'string' },
    'expected-out': { type: 'string' },
    ek: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run(values, io, positionals) {
    if (positionals.length !== 1) throw new UsageError('give one ATTESTATION file');
    const challengeOut = optional(values, 'challenge-out');
    const expectedOut = optional(values, 'expected-out');
    const ek = optional(values, 'ek');
    const expected = optional(values, 'expected');
    const activation = optional(values, 'activation');
    const nonce = optional(values, 'nonce');
    const akCa = optional(values, 'ak-ca');
    if ((challengeOut === undefined) !== (expectedOut === undefined)) {
      throw new UsageError('give --challenge-out and --expected-out together: the device gets one, you keep the other');
    }
    if (challengeOut !== undefined) {
      if (expected !== undefined || activation !== undefined || nonce !== undefined || akCa !== undefined) {
        throw new UsageError(
          '--challenge-out makes a challenge; it takes no --expected, --activation, --nonce or --ak-ca',
        );
      }
      if (ek !== undefined && ek !== 'rsa' && ek !== 'ecc') throw new UsageError('--ek must be rsa or ecc');
    } else if (ek !== undefined || values['force'] !== undefined) {
      throw new UsageError(`--${ek !== undefined ? 'ek' : 'force'} applies to --challenge-out`);
    }
    if ((expected === undefined) !== (activation === undefined)) {
      throw new UsageError('give --expected and --activation together');
    }
    const nonceBytes = nonce === undefined ? undefined : flagValue('nonce', nonce, parseNonce);
    const attestation = await readTextInput(positionals[0]!, { what: 'attestation' });
    // Parsed here, so that a file holding no certificate is refused by its flag's name.
    const roots = rootCertificates(await readTextInput(required(values, 'ca'), { what: 'CA file' }), '--ca');

    if (challengeOut !== undefined && expectedOut !== undefined) {
      const force = values['force'] === true;
      await refuseExisting([expectedOut, challengeOut], force);
      const made = createActivationChallenge(attestation, { roots, ...(ek === 'rsa' || ek === 'ecc' ? { ek } : {}) });
      // The expectation first: a challenge without it could never be checked.
      await writeOutput(expectedOut, json(made.expected), force);
      await writeOutput(challengeOut, json(made.challenge), force);
      io.err(`wrote ${challengeOut}: send it to the device (tpm-jwt attest --activate)\n`);
      io.err(`wrote ${expectedOut}: keep it here, never send it (verify-attestation --expected)\n`);
      return;
    }
    const verdict = verifyAttestation(attestation, {
      roots,
      ...(akCa !== undefined && {
        akRoots: rootCertificates(await readTextInput(akCa, { what: 'AK CA file' }), '--ak-ca'),
      }),
      ...(nonceBytes !== undefined && { nonce: nonceBytes }),
      ...(expected !== undefined && {
        activation: {
          expected: await readTextInput(expected, { what: 'activation expectation' }),
          response: await readTextInput(activation!, { what: 'activation response' }),
        },
      }),
    });
    const reasons = verdict.reasons.map((r) => ({ ...r, detail: withNextStep(r, activation, akCa) }));
    io.out(json({ ...verdict, reasons }));
    if (!verdict.ok) {
      const failed = reasons.filter((r) => !r.ok).map((r) => `${r.check}: ${r.detail}`);
      throw new TpmJwtError('ERR_INVALID_ARGUMENT', `attestation rejected: ${failed.join('; ')}`);
    }
  },
};
