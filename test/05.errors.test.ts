import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Tpm, TpmJwtError } from '../lib/index.js';
import { ERROR_CODES, JOSE_ERROR_CODES } from '../lib/errors.js';
import { native, type NativePreparedKey } from '../lib/native.js';
import { useSwtpm } from './helpers/swtpm.js';

const TPM2_RH_OWNER = 0x40000001;
const TPM2_ALG_ECC = 0x0023;
const TPM2_ECC_NIST_P256 = 0x0003;
const ECDSA_SHA256 = { scheme: 0x0018, hash: 0x000b, coordinateSize: 32 };

describe('05 error codes', () => {
  it('has no duplicate in ERROR_CODES, and the jose codes are among them', () => {
    assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
    for (const code of JOSE_ERROR_CODES) assert.ok(ERROR_CODES.includes(code), code);
  });

  it('documents exactly the codes of ERROR_CODES in docs/errors.md, in the same order', () => {
    const table = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const documented = [...table.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((match) => match[1]);
    assert.deepEqual(documented, [...ERROR_CODES]);
  });

  it('names the same codes in the addon as in ERROR_CODES', () => {
    const { errorCodes } = native();
    assert.ok(Object.isFrozen(errorCodes));
    assert.equal(new Set(errorCodes).size, errorCodes.length, 'the addon lists a code twice');
    const ours = new Set<string>(ERROR_CODES);
    assert.deepEqual(
      errorCodes.filter((code) => !ours.has(code)),
      [],
      'codes the addon has and lib/errors.ts lacks',
    );
    const addon = new Set(errorCodes);
    assert.deepEqual(
      ERROR_CODES.filter((code) => !addon.has(code)),
      [],
      'codes lib/errors.ts has and the addon lacks',
    );
  });

  it('carries the code of a failure the native layer decides (ERR_TPM_CONNECTION)', async () => {
    await assert.rejects(Tpm.open({ tcti: 'swtpm:host=127.0.0.1,port=1' }), (err: unknown) => {
      assert.ok(err instanceof TpmJwtError);
      assert.equal(err.code, 'ERR_TPM_CONNECTION');
      return true;
    });
  });

  it('carries the code of a synchronous native failure (ERR_INVALID_ARGUMENT)', () => {
    const spec = { type: TPM2_ALG_ECC, curve: TPM2_ECC_NIST_P256 };
    assert.throws(
      () =>
        native().marshalImportable({ spec, secret: new Uint8Array(32), x: new Uint8Array(200), y: new Uint8Array(32) }),
      (err: unknown) => {
        assert.ok(err instanceof TpmJwtError);
        assert.equal(err.code, 'ERR_INVALID_ARGUMENT');
        assert.match(err.message, /EC point is too long/);
        return true;
      },
    );
  });

  it('refuses anything but a prepared key where one is expected, with TypeError', () => {
    const context = new (native().Context)();
    const digest = new Uint8Array(32);
    const notKeys: unknown[] = [{}, { handle: 0x81000010 }, 0, null, undefined, 'key', new Uint8Array(8)];
    for (const value of notKeys) {
      const key = value as NativePreparedKey;
      assert.throws(() => context.sign(key, digest, ECDSA_SHA256), TypeError, String(value));
      assert.throws(() => context.signMessage(key, digest, ECDSA_SHA256), TypeError, String(value));
    }
  });

  describe('on a TPM', () => {
    const swtpm = useSwtpm();

    it('carries the code the TPM return code maps to, with the rc (ERR_TPM_KEY_NOT_FOUND)', async () => {
      const tpm = await swtpm.openTpm();
      await assert.rejects(tpm.loadKey(0x81000ff0), (err: unknown) => {
        assert.ok(err instanceof TpmJwtError);
        assert.equal(err.code, 'ERR_TPM_KEY_NOT_FOUND');
        assert.equal(typeof err.tpmRc, 'number');
        assert.equal(err.command, 'Esys_TR_FromTPMPublic');
        return true;
      });
    });

    it('signs with a key from prepareKey, whose tag the native layer checks', async () => {
      const context = new (native().Context)();
      await context.open(swtpm.tcti, undefined, { encrypt: false });
      try {
        const blob = await context.createKey(TPM2_RH_OWNER, { type: TPM2_ALG_ECC, curve: TPM2_ECC_NIST_P256 });
        const key = context.prepareKey({ parent: TPM2_RH_OWNER, public: blob.public, private: blob.private });
        const signature = await context.sign(key, new Uint8Array(32).fill(7), ECDSA_SHA256);
        assert.equal(signature.length, 64);
      } finally {
        await context.close();
      }
    });
  });
});
