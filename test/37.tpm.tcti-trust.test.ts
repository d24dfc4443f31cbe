/**
 * A credentials file never runs code: the TCTI a descriptor names is limited to the
 * kinds that only talk to a TPM. Each refused form goes through every entry point that
 * reads descriptors, and markers prove nothing ran: a command that would create a file,
 * a library whose constructor would, a "device" that would be written to. Its key
 * path is read relative to it, and only from a regular file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { TpmAuthClient } from '../lib/google/index.js';
import { jwt } from '../lib/index.js';
import { checkTctiFromFile } from '../lib/tpm/tcti-trust.js';
import { assertFails, cli } from './helpers/cli.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { useSwtpm } from './helpers/swtpm.js';
import { overlayEnv } from './helpers/env.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';
const AUD = 'https://pubsub.googleapis.com/';

describe('37 credentials files from elsewhere: TCTI, key paths', () => {
  const swtpm = useSwtpm();
  let dir: string;
  let ran: string;
  let library: string;
  let regular: string;

  before(async () => {
    dir = swtpm.tempDir('tcti');
    ran = path.join(dir, 'ran');
    regular = path.join(dir, 'regular');
    writeFileSync(regular, 'untouched');
    library = path.join(dir, 'libmarker.so');
    const source = path.join(dir, 'marker.c');
    writeFileSync(
      source,
      '#include <stdio.h>\n' +
        `__attribute__((constructor)) static void ran(void) { fclose(fopen(${JSON.stringify(ran)}, "w")); }\n`,
    );
    execFileSync('cc', ['-shared', '-fPIC', '-o', library, source]);
    const tpm = await swtpm.openTpm();
    await tpm.createKey({ alg: 'ES256', persist: 0x81000020 });
    swtpm.cleanup(() => tpm.evict(0x81000020));
  });
  afterEach(() => rmSync(ran, { force: true }));

  const descriptor = (tcti: string, key = 'handle:0x81000020'): string =>
    writeDescriptor(path.join(dir, 'sa.json'), { client_email: EMAIL, tpm: { key, tcti } });

  // Every reader of descriptors, as a user reaches it.
  const entryPoints: [string, (file: string) => Promise<unknown>][] = [
    ['jwt.Credentials.fromServiceAccountFile', (file) => jwt.Credentials.fromServiceAccountFile(file)],
    ['TpmAuthClient.fromServiceAccountFile', (file) => TpmAuthClient.fromServiceAccountFile(file)],
    [
      'tpm-jwt token --credentials',
      async (file) => {
        const result = await cli(['token', '--credentials', file, '--audience', AUD]);
        assertFails(result, 1, 'ERR_INVALID_ARGUMENT');
        assert.equal(result.stdout, '', 'no token on a failure');
        throw Object.assign(new Error(result.stderr), { code: 'ERR_INVALID_ARGUMENT' });
      },
    ],
    [
      'tpm-jwt pubkey --credentials',
      async (file) => {
        const result = await cli(['pubkey', '--credentials', file]);
        assertFails(result, 1, 'ERR_INVALID_ARGUMENT');
        throw Object.assign(new Error(result.stderr), { code: 'ERR_INVALID_ARGUMENT' });
      },
    ],
  ];

  const refused = (): [string, string][] => [
    ['a command', `cmd:touch ${ran}`],
    ['a command, upper case', `CMD:touch ${ran}`],
    ['a command, mixed case', `Cmd:touch ${ran}`],
    ['a command, leading space', ` cmd:touch ${ran}`],
    ['a command by library name', `libtss2-tcti-cmd.so.0:touch ${ran}`],
    ['a command by short library name', `tcti-cmd:touch ${ran}`],
    ['a command inside pcap', `pcap:cmd:touch ${ran}`],
    ['a library by path', library],
    ['a library by path, with a configuration', `${library}:x`],
    ['a library by relative path', `./${path.basename(library)}`],
    ['an allowed kind, upper case', 'SWTPM:host=127.0.0.1,port=2321'],
    ['an allowed kind, leading space', ' swtpm:host=127.0.0.1,port=2321'],
    ['a device that is a regular file', `device:${regular}`],
    ['a device that is not a TPM', 'device:/dev/null'],
    ['a device by relative path', 'device:dev/tpm0'],
    ['a socket with an unknown option', 'swtpm:host=127.0.0.1,port=2321,cmd=x'],
    ['a socket with a bad port', 'mssim:host=127.0.0.1,port=99999'],
    ['a socket with a bad host', 'swtpm:host=a;b,port=2321'],
    ['tabrmd with a bad bus type', 'tabrmd:bus_type=evil'],
  ];

  for (const [entry, open] of entryPoints) {
    it(`${entry} refuses every TCTI form but device, swtpm, mssim and tabrmd, and runs nothing`, async () => {
      for (const [what, tcti] of refused()) {
        await assert.rejects(open(descriptor(tcti)), { code: 'ERR_INVALID_ARGUMENT' }, `${what}: ${tcti}`);
      }
      assert.ok(!existsSync(ran), 'a refused TCTI ran code');
      assert.equal(readFileSync(regular, 'utf8'), 'untouched');
    });
  }

  it('names the opt-in in its message', () => {
    assert.throws(() => checkTctiFromFile(`cmd:touch ${ran}`, 'sa.json', {}), {
      code: 'ERR_INVALID_ARGUMENT',
      message: /sa\.json: .*TPM_JWT_ALLOW_ANY_TCTI=1/,
    });
  });

  it('accepts the TPM kinds with valid configurations', () => {
    for (const tcti of [
      '',
      'swtpm',
      'swtpm:host=127.0.0.1,port=2321',
      'mssim:host=tpm.local,port=2321',
      'tabrmd',
      'tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=session',
    ]) {
      assert.equal(checkTctiFromFile(tcti, 'sa.json', {}), tcti);
    }
    // A missing device is no TPM, not a refused string.
    assert.throws(() => checkTctiFromFile('device:/dev/tpmrm9', 'sa.json', {}), { code: 'ERR_TPM_CONNECTION' });
  });

  it('uses a descriptor whose TCTI is the suite TPM', async () => {
    const credentials = await jwt.Credentials.fromServiceAccountFile(descriptor(swtpm.tcti), { audience: AUD });
    try {
      await credentials.refresh();
      assert.equal(jwt.decodeHeader(credentials.token!).alg, 'ES256');
    } finally {
      await credentials.signer.close?.();
    }
  });

  it('passes any TCTI through with TPM_JWT_ALLOW_ANY_TCTI=1, as the user opted in', async () => {
    const restore = overlayEnv({ TPM_JWT_ALLOW_ANY_TCTI: '1' });
    try {
      // The command runs (and, not being a TPM, fails to answer).
      await assert.rejects(jwt.Credentials.fromServiceAccountFile(descriptor(`cmd:touch ${ran}`)));
      assert.ok(existsSync(ran), 'the opted-in command ran');
      rmSync(ran);
      // tpm2-tss loads the library (its constructor runs), then finds no TCTI in it.
      await assert.rejects(jwt.Credentials.fromServiceAccountFile(descriptor(library)));
      assert.ok(existsSync(ran), 'the opted-in library was loaded');
    } finally {
      restore();
    }
  });

  it('takes the TCTI the user passes directly as given', async () => {
    // --tcti, the option in code and TPM2TOOLS_TCTI are the user's own choice.
    const result = await cli(['pubkey', '--key', '0x81000020', '--tcti', `cmd:touch ${ran}`]);
    assert.equal(result.code, 1);
    assert.ok(existsSync(ran), 'the TCTI the user gave was used');
  });

  it("reads a descriptor's key path relative to the descriptor, whatever the working directory", async () => {
    const tpm = await swtpm.openTpm();
    writeFileSync(path.join(dir, 'key.pem'), (await tpm.createKey({ alg: 'ES256' })).toPem());
    const file = descriptor(swtpm.tcti, 'key.pem');
    const credentials = await jwt.Credentials.fromServiceAccountFile(file, { audience: AUD });
    try {
      await credentials.refresh();
      assert.equal(jwt.decodeHeader(credentials.token!).alg, 'ES256');
    } finally {
      await credentials.signer.close?.();
    }
    assert.notEqual(process.cwd(), dir);
  });

  it('refuses a key path that is not a regular file (a device, a FIFO, a directory)', async () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const key of ['/dev/zero', fifo, dir, 'missing.pem']) {
      await assert.rejects(jwt.Credentials.fromServiceAccountFile(descriptor(swtpm.tcti, key)), {
        code: 'ERR_KEY_FILE_INVALID',
        message: /not a readable regular file/,
      });
    }
  });
});
