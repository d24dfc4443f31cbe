/**
 * The library's messages name its options and functions (force, akRoots,
 * createActivationChallenge); a CLI user can act only on flags and commands. Every
 * message the CLI prints passes through cliWording, which says the same in the CLI's
 * terms and adds the next step where the library's message has none.
 */

/** Library phrasing and the CLI's, in order; each pattern matches only its own message. */
const REWORDINGS: readonly [RegExp, string][] = [
  [/\bpass force to replace it\b/g, 'pass --force to replace it'],
  [
    /\brun credential activation \(createActivationChallenge, then activateCredential on the device\)/g,
    'run credential activation (verify-attestation --challenge-out C --expected-out E, ' +
      'then attest --activate C --out A on the device, then verify-attestation --expected E --activation A)',
  ],
  [/\bcheck a platform AK certificate against akRoots\b/g, 'check a platform AK certificate with --ak-ca'],
  [/\(akRoots, --ak-ca\)/g, '(--ak-ca)'],
  // The verifier's and attestKey's argument names, at the start of a message.
  [/^akRoots(?=:| holds| must)/, '--ak-ca'],
  [/^roots(?=:| holds| must)/, '--ca'],
  [/^ekChain(?=:| holds| must)/, '--ek-chain'],
];

/** A next step, added once to a message that matches and lacks it. */
const HINTS: readonly { when: RegExp; unless: RegExp; hint: string }[] = [
  {
    when: /\bholds no readable EK certificate\b/,
    unless: /swtpm_setup/,
    hint:
      'a TPM is attested by the EK certificate its maker wrote to NV; a swtpm gets one when its state is made ' +
      'with swtpm_setup --tpm2 --create-ek-cert --create-platform-cert',
  },
  {
    when: /\bEK certificate \(NV [^)]*\): [^;]*\bdoes not chain to a given root\b/,
    unless: /--ek-chain/,
    hint:
      'if its issuer is an intermediate CA, the device adds it with attest --ek-chain intermediates.pem; ' +
      "otherwise give the EK maker's root with --ca",
  },
];

/** `message` in the CLI's terms: flags for options, commands for functions, and a next step. */
export function cliWording(message: string): string {
  let text = message;
  for (const [pattern, replacement] of REWORDINGS) text = text.replace(pattern, replacement);
  for (const { when, unless, hint } of HINTS) {
    if (when.test(text) && !unless.test(text)) text = `${text} (${hint})`;
  }
  return text;
}
