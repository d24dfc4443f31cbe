import type { ServiceAccountInfo } from '../../crypt/service-account.js';
import { TpmJwtError } from '../../errors.js';
import { formatHandle } from '../../tpm/handle.js';
import type { ImportSource } from '../../tpm/import.js';
import { authFromEnv, keyDestination, optional, required } from '../args.js';
import { json, withTpm, type Command } from '../command.js';
import { handleInUse } from '../handle-in-use.js';
import { readTextInput } from '../input-file.js';
import { refuseExisting, writeOutput } from '../output-file.js';

/** A service-account JSON, or PEM text as it is. */
function parseSource(text: string, file: string): { source: ImportSource; account?: ServiceAccountInfo } {
  if (text.trimStart().startsWith('{')) {
    let account: ServiceAccountInfo;
    try {
      account = JSON.parse(text) as ServiceAccountInfo;
    } catch (err) {
      throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${file} is not JSON`, { cause: err });
    }
    if (typeof account.private_key !== 'string') {
      throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${file} has no private_key`);
    }
    return { source: { private_key: account.private_key }, account };
  }
  return { source: text };
}

export const importCommand: Command = {
  usage: `tpm-jwt import --in sa.json|key.pem (--persist HANDLE | --out key.pem) [--auth-env VAR] [--force]

Wraps the private key for the TPM's storage primary and has the TPM import it:
afterwards only this TPM can use it, and the input file can be deleted. For a
service-account JSON, prints the tpm_service_account descriptor that replaces it;
for a PEM key, prints the public key. --out writes mode 0600; an occupied HANDLE or
an existing file is refused unless --force.

  tpm-jwt import --in sa.json --persist 0x81008001 > sa-tpm.json && shred -u sa.json`,
  options: {
    in: { type: 'string' },
    persist: { type: 'string' },
    out: { type: 'string' },
    'auth-env': { type: 'string' },
    force: { type: 'boolean' },
  },
  async run(values, io) {
    const input = required(values, 'in');
    const { out, persist, force } = keyDestination(values);
    const auth = authFromEnv(values, io.env);
    if (out !== undefined) await refuseExisting([out], force);
    const text = await readTextInput(input, { code: 'ERR_KEY_FILE_INVALID' });
    const { source, account } = parseSource(text, input);
    const tcti = optional(values, 'tcti');

    const key = await withTpm(values, async (tpm) => {
      const imported = await tpm
        .importKey(source, {
          force,
          ...(persist !== undefined && { persist }),
          ...(auth !== undefined && { auth }),
        })
        .catch((err) =>
          persist === undefined ? Promise.reject(err) : handleInUse(err, '--persist', persist, '--force'),
        );
      if (out !== undefined) await writeOutput(out, imported.toPem(), force);
      return imported;
    });
    const keyRef = out ?? `handle:${formatHandle(persist!)}`;
    io.err(`imported ${key.algorithm} key into the TPM: ${keyRef}\n`);
    if (!account) {
      io.out(key.publicKey.export({ type: 'spki', format: 'pem' }).toString());
      return;
    }
    io.out(
      json({
        type: 'tpm_service_account',
        client_email: account.client_email,
        private_key_id: account.private_key_id,
        project_id: account.project_id,
        tpm: {
          ...(tcti !== undefined && { tcti }),
          key: keyRef,
          ...(values['auth-env'] !== undefined && { auth_env: values['auth-env'] }),
        },
      }),
    );
  },
};
