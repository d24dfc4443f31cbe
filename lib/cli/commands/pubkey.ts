import { isAlgorithm } from '../../algorithms.js';
import { publicJwk } from '../../jwk.js';
import { optional, required, UsageError } from '../args.js';
import { loadKeyRef } from '../../tpm/key-ref.js';
import { json, withTpm, type Command } from '../command.js';

const FORMATS = ['pem', 'jwk', 'jwks'];

export const pubkey: Command = {
  name: 'pubkey',
  summary: "print a TPM key's public key",
  usage: `tpm-jwt pubkey --key KEYREF [--format pem|jwk|jwks] [--kid KID] [--alg ALG]

PEM is SubjectPublicKeyInfo. JWK and JWKS carry alg (the key's default, or --alg),
use "sig" and kid (--kid, else the RFC 7638 thumbprint).

  tpm-jwt pubkey --key handle:0x81000010 --format jwks --kid my-key-id`,
  options: {
    key: { type: 'string' },
    format: { type: 'string' },
    kid: { type: 'string' },
    alg: { type: 'string' },
  },
  async run(values, io) {
    const ref = required(values, 'key');
    const format = optional(values, 'format') ?? 'pem';
    if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}`);
    const alg = optional(values, 'alg');
    if (alg !== undefined && !isAlgorithm(alg)) throw new UsageError(`--alg ${alg} is not supported`);
    const key = await withTpm(values, (tpm) => loadKeyRef(tpm, ref));
    if (format === 'pem') {
      io.out(key.publicKey.export({ type: 'spki', format: 'pem' }).toString());
      return;
    }
    if (alg !== undefined && !key.algorithms.includes(alg)) {
      throw new UsageError(`this key signs ${key.algorithms.join(', ')}, not ${alg}`);
    }
    const jwk = publicJwk(key.publicKey, alg ?? key.algorithm, optional(values, 'kid'));
    io.out(json(format === 'jwks' ? { keys: [jwk] } : jwk));
  },
};
