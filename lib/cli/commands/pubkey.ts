import { isAlgorithm } from '../../algorithms.js';
import { readServiceAccountFile, tpmSignerOptions } from '../../crypt/service-account.js';
import { TpmJwtError } from '../../errors.js';
import { publicJwk } from '../../jwk.js';
import { loadKeyRef } from '../../tpm/key-ref.js';
import { optional, UsageError, type Values } from '../args.js';
import { json, withTpm, type Command } from '../command.js';

/** The KEYREF, TCTI and key id: from the flags, or from a tpm_service_account descriptor. */
async function keySource(values: Values): Promise<{ ref: string; tcti?: string; kid?: string }> {
  const key = optional(values, 'key');
  const descriptor = optional(values, 'credentials');
  if ((key === undefined) === (descriptor === undefined)) {
    throw new UsageError('give exactly one of --key or --credentials');
  }
  if (key !== undefined) return { ref: key };
  const info = await readServiceAccountFile(descriptor!);
  if (info.type !== 'tpm_service_account') {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${descriptor} is not a tpm_service_account descriptor`);
  }
  const { key: ref, tcti, keyId: kid } = await tpmSignerOptions(info, { file: descriptor! }, false);
  return { ref, ...(tcti !== undefined && { tcti }), ...(kid !== undefined && { kid }) };
}

const FORMATS = ['pem', 'jwk', 'jwks'];

export const pubkey: Command = {
  usage: `tpm-jwt pubkey (--key KEYREF | --credentials descriptor.json) [--format pem|jwk|jwks] [--kid KID] [--alg ALG]

PEM is SubjectPublicKeyInfo. JWK and JWKS carry alg (the key's default, or --alg),
use "sig" and kid (--kid, else the descriptor's private_key_id, else the RFC 7638
thumbprint).

  tpm-jwt pubkey --key handle:0x81000010 --format jwks --kid my-key-id
  tpm-jwt pubkey --credentials sa-tpm.json --format jwks`,
  options: {
    key: { type: 'string' },
    credentials: { type: 'string' },
    format: { type: 'string' },
    kid: { type: 'string' },
    alg: { type: 'string' },
  },
  async run(values, io) {
    const source = await keySource(values);
    const format = optional(values, 'format') ?? 'pem';
    if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}`);
    const alg = optional(values, 'alg');
    if (alg !== undefined && !isAlgorithm(alg)) throw new UsageError(`--alg ${alg} is not supported`);
    const tcti = optional(values, 'tcti') ?? source.tcti;
    const key = await withTpm({ ...values, tcti }, (tpm) => loadKeyRef(tpm, source.ref));
    if (format === 'pem') {
      io.out(key.publicKey.export({ type: 'spki', format: 'pem' }).toString());
      return;
    }
    if (alg !== undefined && !key.algorithms.includes(alg)) {
      throw new UsageError(`this key signs ${key.algorithms.join(', ')}, not ${alg}`);
    }
    const jwk = publicJwk(key.publicKey, alg ?? key.algorithm, optional(values, 'kid') ?? source.kid);
    io.out(json(format === 'jwks' ? { keys: [jwk] } : jwk));
  },
};
