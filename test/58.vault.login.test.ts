/**
 * HashiCorp Vault's JWT auth method with the TPM key: vaultLogin and tpm-jwt vault-login
 * get a Vault token from a stand-in that validates as Vault documents it, and Vault's own
 * refusals reach the caller as ERR_TOKEN_EXCHANGE with Vault's words.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { TpmSigner, type Tpm, type TpmKey } from '../lib/index.js';
import { vaultLogin, type VaultLoginOptions } from '../lib/vault/index.js';
import { assertFails, cli } from './helpers/cli.js';
import { startFakeVault, type FakeVault } from './helpers/fake-vault.js';
import { refusingUrl } from './helpers/http.js';
import { useSwtpm } from './helpers/swtpm.js';

describe('58 Vault: JWT auth with the TPM key', () => {
  const swtpm = useSwtpm();
  let tpm: Tpm;
  let keys: Record<'ES256' | 'RS256', TpmKey>;
  let vault: FakeVault;
  let caFile: string;
  let options: VaultLoginOptions;

  before(async () => {
    tpm = await swtpm.openTpm();
    keys = {
      ES256: await tpm.createKey({ alg: 'ES256', persist: 0x81005801 }),
      RS256: await tpm.createKey({ alg: 'RS256' }),
    };
    swtpm.cleanup(() => tpm.evict(0x81005801));
    const dir = swtpm.tempDir('vault');
    vault = await startFakeVault(dir);
    vault.validationKeys.push(keys.ES256.publicKey, keys.RS256.publicKey);
    vault.roles.set('device', {
      bound_audiences: ['vault.example.com'],
      bound_subject: 'device-42',
      user_claim: 'sub',
      token_policies: ['read-secrets'],
      token_ttl: 3600,
    });
    caFile = path.join(dir, 'vault-ca.pem');
    writeFileSync(caFile, vault.ca);
    options = {
      address: vault.address,
      ca: vault.ca,
      role: 'device',
      audience: 'vault.example.com',
      subject: 'device-42',
    };
  });

  after(() => vault?.close());

  for (const alg of ['ES256', 'RS256'] as const) {
    it(`logs in with an ${alg} JWT signed in the TPM and returns Vault's auth`, async () => {
      const auth = await vaultLogin(TpmSigner.fromKey(keys[alg]), options);
      assert.match(auth.client_token, /^hvs\./);
      assert.deepEqual(auth.policies, ['default', 'read-secrets']);
      assert.equal(auth.lease_duration, 3600);
      assert.deepEqual(vault.logins.at(-1), { role: 'device' });
    });
  }

  it("passes Vault's refusal on in Vault's words, as ERR_TOKEN_EXCHANGE", async () => {
    const signer = TpmSigner.fromKey(keys.ES256);
    const refusals: [Partial<VaultLoginOptions>, RegExp][] = [
      [{ audience: 'another-audience' }, /audience claim does not match any expected audience/],
      [{ subject: 'device-43' }, /sub claim does not match bound subject/],
      [{ role: 'admin' }, /role "admin" could not be found/],
    ];
    for (const [change, reason] of refusals) {
      await assert.rejects(vaultLogin(signer, { ...options, ...change }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_TOKEN_EXCHANGE');
        assert.match(err.message, /HTTP 400/);
        assert.match(err.message, reason);
        return true;
      });
    }
    // A key Vault does not hold.
    const stranger = TpmSigner.fromKey(await tpm.createKey({ alg: 'ES256' }));
    await assert.rejects(vaultLogin(stranger, options), {
      code: 'ERR_TOKEN_EXCHANGE',
      message: /error validating signature/,
    });
    // A Vault that cannot be reached, and one whose certificate is not trusted.
    await assert.rejects(vaultLogin(signer, { ...options, address: await refusingUrl('/') }), {
      code: 'ERR_TOKEN_EXCHANGE',
      message: /could not be reached/,
    });
    const { ca: _ca, ...untrusted } = options;
    await assert.rejects(vaultLogin(signer, untrusted), { code: 'ERR_TOKEN_EXCHANGE', message: /certificate/ });
  });

  it('refuses bad options with ERR_INVALID_ARGUMENT before signing', async () => {
    const signer = TpmSigner.fromKey(keys.ES256);
    for (const change of [
      { address: 'not a url' },
      { address: 'ftp://v' },
      { address: 'http://vault.example.com:8200' },
      { role: '' },
      { mount: '../sys' },
      { lifetime: 0 },
    ]) {
      await assert.rejects(
        vaultLogin(signer, { ...options, ...change }),
        { code: 'ERR_INVALID_ARGUMENT' },
        JSON.stringify(change),
      );
    }
  });

  it('tpm-jwt vault-login prints the Vault token, from VAULT_ADDR and VAULT_CACERT', async () => {
    const args = ['vault-login', '--key', '0x81005801', '--role', 'device', '--audience', 'vault.example.com'];
    const env = { VAULT_ADDR: vault.address, VAULT_CACERT: caFile };
    const plain = await cli([...args, '--subject', 'device-42', '--tcti', swtpm.tcti], env);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^hvs\.\S+\n$/);
    const json = await cli([...args, '--subject', 'device-42', '--json', '--tcti', swtpm.tcti], env);
    assert.equal(JSON.parse(json.stdout).lease_duration, 3600);
    assertFails(await cli([...args, '--subject', 'device-43', '--tcti', swtpm.tcti], env), 1, 'ERR_TOKEN_EXCHANGE');
    assertFails(await cli([...args, '--subject', 'device-42', '--tcti', swtpm.tcti], { VAULT_ADDR: '' }), 2, 'USAGE');
  });
});
