import { ALGORITHMS, isAlgorithm } from '../../algorithms.js';
import { formatHandle, parsePersistentHandle } from '../../tpm/handle.js';
import { authFromEnv, optional, required, UsageError } from '../args.js';
import { json, withTpm, type Command } from '../command.js';
import { publicJwk } from '../../jwk.js';

export const keygen: Command = {
  name: 'keygen',
  summary: 'create a signing key inside the TPM',
  usage: `tpm-jwt keygen --alg RS256|PS256|ES256 [--bits 2048|3072] --persist HANDLE [--auth-env VAR] [--force]

Creates the key under the TPM's storage primary and makes it persistent at HANDLE.
Prints the public key (PEM, or --json). An occupied HANDLE is refused unless --force.

  tpm-jwt keygen --alg RS256 --persist 0x81000010
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
    if (values['out'] !== undefined) {
      throw new UsageError('--out (TSS2 key files) is not supported yet; use --persist');
    }
    if (values['pcrs'] !== undefined) throw new UsageError('--pcrs is not supported yet');
    const persist = parsePersistentHandle(required(values, 'persist'), '--persist');
    const bitsText = optional(values, 'bits');
    const bits = bitsText === undefined ? undefined : Number(bitsText);
    if (bits !== undefined && bits !== 2048 && bits !== 3072) {
      throw new UsageError('--bits must be 2048 or 3072');
    }
    const auth = authFromEnv(values, io.env);
    const key = await withTpm(values, (tpm) =>
      tpm.createKey({
        alg,
        persist,
        force: values['force'] === true,
        ...(bits !== undefined && { bits }),
        ...(auth !== undefined && { auth }),
      }),
    );
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    if (values['json']) {
      const kid = publicJwk(key.publicKey, alg).kid;
      io.out(json({ handle: formatHandle(persist), algorithm: alg, kid, publicKeyPem: pem }));
    } else {
      io.err(`created ${alg} key at ${formatHandle(persist)}\n`);
      io.out(pem);
    }
  },
};
