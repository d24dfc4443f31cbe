import { signBlob } from '../../google/storage.js';
import { optional } from '../args.js';
import type { Command } from '../command.js';
import { readInput } from '../input-file.js';
import { KEY_OPTIONS, openKeySigner } from '../signer-source.js';

export const signBlobCommand: Command = {
  usage: `tpm-jwt sign-blob (--key KEYREF | --credentials descriptor.json) [--in FILE]
         [--auth-env VAR] [--pcrs sha256:0,7]

Prints the base64 RSASSA-PKCS1-v1_5 SHA-256 signature of the bytes of FILE (or of
standard input), made in the TPM: what IAM signBlob returns, without IAM. The key
must be RSA (RS256).

  tpm-jwt sign-blob --key 0x81008001 --in string-to-sign.txt
  printf '%s' "$POLICY_BASE64" | tpm-jwt sign-blob --credentials sa-tpm.json`,
  options: { ...KEY_OPTIONS, in: { type: 'string' } },
  async run(values, io) {
    const file = optional(values, 'in');
    const blob = file === undefined ? await io.readStdin() : await readInput(file);
    const { signer } = await openKeySigner(values, io);
    try {
      io.out(`${await signBlob(signer, blob)}\n`);
    } finally {
      await signer.close?.();
    }
  },
};
