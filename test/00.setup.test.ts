import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { native } from '../lib/native.js';

describe('00 setup', () => {
  it('loads the native addon', () => {
    const addon = native();
    assert.equal(typeof addon.Context, 'function');
    assert.equal(typeof addon.describePublic, 'function');
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
