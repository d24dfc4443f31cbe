import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { native, type NativePreparedKey } from '../lib/native.js';

describe('00 setup', () => {
  it('loads the native addon', () => {
    const addon = native();
    assert.equal(typeof addon.Context, 'function');
    assert.equal(typeof addon.marshalImportable, 'function');
  });

  it('explains every cause and fix when the addon cannot load (ERR_NATIVE_ADDON)', () => {
    const nativeModule = fileURLToPath(new URL('../lib/native.ts', import.meta.url));
    const script = `
      const { native } = await import(${JSON.stringify(nativeModule)});
      try { native(); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, TPM_JWT_ADDON: '/nonexistent/tpm_jwt.node' },
      encoding: 'utf8',
    });
    const error = JSON.parse(result.stdout);
    assert.equal(error.code, 'ERR_NATIVE_ADDON');
    assert.match(error.message, /\/nonexistent\/tpm_jwt\.node: not built/);
    assert.match(error.message, /apt-get install libtss2/);
    assert.match(error.message, /dnf install tpm2-tss/);
    assert.match(error.message, /prebuilds: linux-x64 and linux-arm64/);
    assert.match(error.message, /npm rebuild tpm-jwt/);
  });

  it('rejects bad arguments at the native boundary with TypeError, not an abort', () => {
    const addon = native();
    assert.throws(() => addon.marshalImportable('nope' as never), TypeError);
    const context = new addon.Context();
    assert.throws(() => context.prepareKey({ handle: -1 }), TypeError);
    assert.throws(() => context.sign({} as NativePreparedKey, new Uint8Array(32), { scheme: 0, hash: 0 }), TypeError);
    assert.throws(() => context.createKey(0x40000001, { type: 0x99 }), TypeError);
  });

  for (const tool of ['swtpm', 'tpm2_getcap', 'tpm2_readpublic', 'openssl']) {
    it(`has ${tool} for the interoperability tests`, () => {
      const result = spawnSync(tool, ['--version']);
      assert.equal(
        result.error,
        undefined,
        `${tool} is missing: apt-get install swtpm swtpm-tools tpm2-tools tpm2-openssl`,
      );
    });
  }
});
