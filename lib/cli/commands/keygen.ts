import { ALGORITHMS, isAlgorithm, isRsaKeySize, RSA_KEY_SIZES } from '../../algorithms.js';
import { formatHandle } from '../../tpm/handle.js';
import { formatPcrs, parsePcrs } from '../../tpm/pcrs.js';
import { authFromEnv, flagValue, keyDestination, optional, required, UsageError } from '../args.js';
import { json, withTpm, type Command } from '../command.js';
import { handleInUse } from '../handle-in-use.js';
import { refuseExisting, writeOutput } from '../output-file.js';
import { publicJwk } from '../../jwk.js';

export const keygen: Command = {
  usage: `tpm-jwt keygen --alg ${ALGORITHMS.join('|')} [--bits ${RSA_KEY_SIZES.join('|')}]
         (--persist HANDLE | --out key.pem) [--auth-env VAR] [--pcrs sha256:0,7] [--force]

Creates the key under the TPM's storage primary, then makes it persistent at HANDLE
or writes it as a TSS2 PRIVATE KEY file (mode 0600; only this TPM can use it).
Prints the public key (PEM, or --json). An occupied HANDLE or an existing file is
refused unless --force. --pcrs binds the key to those PCRs' current values: it
signs only while they are unchanged (a key file records the selection; for a
persistent key, pass the same --pcrs when using it).

  tpm-jwt keygen --alg RS256 --persist 0x81000010
  tpm-jwt keygen --alg ES256 --out /etc/tpm-jwt/key.pem
  KEY_AUTH=secret tpm-jwt keygen --alg ES256 --persist 0x81000011 --auth-env KEY_AUTH`,
  options: {
    alg: { type: 'string' },
    bits: { type: 'string' },
    persist: { type: 'string' },
    out: { type: 'string' },
    'auth-env': { type: 'string' },
    pcrs: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run(values, io) {
    const alg = required(values, 'alg');
    if (!isAlgorithm(alg)) throw new UsageError(`--alg must be one of ${ALGORITHMS.join(', ')}`);
    const { out, persist, force } = keyDestination(values);
    // Refuse an existing file before the keygen, which takes seconds on real TPMs.
    if (out !== undefined) await refuseExisting([out], force);
    const bitsText = optional(values, 'bits');
    const bits = bitsText === undefined ? undefined : Number(bitsText);
    if (bits !== undefined && !isRsaKeySize(bits)) {
      throw new UsageError(`--bits must be ${RSA_KEY_SIZES.join(' or ')}`);
    }
    const auth = authFromEnv(values, io.env);
    const pcrsText = optional(values, 'pcrs');
    const pcrs = pcrsText === undefined ? undefined : flagValue('pcrs', pcrsText, parsePcrs);
    const key = await withTpm(values, (tpm) =>
      tpm.createKey({
        alg,
        force,
        ...(pcrs !== undefined && { pcrs }),
        ...(persist !== undefined && { persist }),
        ...(bits !== undefined && { bits }),
        ...(auth !== undefined && { auth }),
      }),
    ).catch((err) => (persist === undefined ? Promise.reject(err) : handleInUse(err, '--persist', persist, '--force')));
    if (out !== undefined) await writeOutput(out, key.toPem(), force);
    const where = out ?? formatHandle(persist!);
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    if (values['json']) {
      const kid = publicJwk(key.publicKey, alg).kid;
      io.out(
        json({
          ...(out ? { file: out } : { handle: where }),
          algorithm: alg,
          kid,
          ...(pcrs && { pcrs: formatPcrs(pcrs) }),
          publicKeyPem: pem,
        }),
      );
    } else {
      io.err(`created ${alg} key at ${where}\n`);
      io.out(pem);
    }
  },
};
