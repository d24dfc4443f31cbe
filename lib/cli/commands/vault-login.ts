import { vaultLogin } from '../../vault/login.js';
import { KEY_USE_OPTIONS, optional, required, UsageError } from '../args.js';
import { json, type Command } from '../command.js';
import { readTextInput } from '../input-file.js';
import { withKeySigner } from '../signer-source.js';

export const vaultLoginCommand: Command = {
  usage: `tpm-jwt vault-login --key KEYREF --role R --audience A --subject S [--issuer I] [--mount jwt]
        [--address URL] [--ca-cert F] [--namespace NS] [--json] [--auth-env VAR] [--pcrs sha256:0,7]

Logs in to HashiCorp Vault's JWT auth method with a JWT signed in the TPM and prints the
Vault token (--json: Vault's whole auth answer). --address defaults to VAULT_ADDR,
--ca-cert to VAULT_CACERT, --namespace to VAULT_NAMESPACE. Vault holds the key's public
key (tpm-jwt pubkey) in the mount's jwt_validation_pubkeys; the role binds the audience
and the subject.

  tpm-jwt vault-login --key 0x81008001 --role device --audience vault.example.com --subject device-42
  export VAULT_TOKEN=$(tpm-jwt vault-login --key 0x81008001 --role device --audience vault.example.com \\
    --subject device-42)`,
  options: {
    key: { type: 'string' },
    role: { type: 'string' },
    audience: { type: 'string' },
    subject: { type: 'string' },
    issuer: { type: 'string' },
    mount: { type: 'string' },
    address: { type: 'string' },
    'ca-cert': { type: 'string' },
    namespace: { type: 'string' },
    json: { type: 'boolean' },
    ...KEY_USE_OPTIONS,
  },
  async run(values, io) {
    // An empty variable is an unset one, as Vault's own CLI reads them.
    const fromEnv = (name: string) => io.env[name] || undefined;
    const address = optional(values, 'address') ?? fromEnv('VAULT_ADDR');
    if (address === undefined) throw new UsageError('give --address or set VAULT_ADDR');
    const caFile = optional(values, 'ca-cert') ?? fromEnv('VAULT_CACERT');
    const ca = caFile === undefined ? undefined : await readTextInput(caFile, { what: 'CA certificate' });
    const namespace = optional(values, 'namespace') ?? fromEnv('VAULT_NAMESPACE');
    const issuer = optional(values, 'issuer');
    const mount = optional(values, 'mount');
    const options = {
      address,
      role: required(values, 'role'),
      audience: required(values, 'audience'),
      subject: required(values, 'subject'),
      ...(issuer !== undefined && { issuer }),
      ...(mount !== undefined && { mount }),
      ...(ca !== undefined && { ca }),
      ...(namespace !== undefined && { namespace }),
    };
    const auth = await withKeySigner(values, io, (signer) => vaultLogin(signer, options));
    io.out(values['json'] === true ? json(auth) : `${auth.client_token}\n`);
  },
};
