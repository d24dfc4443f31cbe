/**
 * A credentials file never runs code: the TCTI a descriptor names is limited to the
 * kinds that only talk to a TPM. Each refused form goes through every entry point that
 * reads descriptors, and markers prove nothing ran: a command that would create a file,
 * a library whose constructor would, a "device" that would be written to. Its key
 * path is read relative to it, and only from a regular file. A simulator it names is
 * on this machine, and it cannot turn encryption off but for a device: a listener
 * proves nothing connected.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';

import { TpmAuthClient, TpmIdentityPoolClient } from '../lib/google/index.js';
import { jwt } from '../lib/index.js';
import { checkEncryptFromFile, checkTctiFromFile } from '../lib/tpm/tcti-trust.js';
import { assertFails, cli } from './helpers/cli.js';
import { writeDescriptor } from './helpers/descriptor.js';
import { useSwtpm } from './helpers/swtpm.js';
import { configurationReaders } from './helpers/configuration-readers.js';
import { overlayEnv } from './helpers/env.js';

const EMAIL = 'sa@p.iam.gserviceaccount.com';
const AUD = 'https://pubsub.googleapis.com/';

describe('20 credentials files from elsewhere: TCTI, key paths', () => {
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
      'mssim:host=localhost,port=2321',
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

  describe('simulators on this machine, encryption on', () => {
    const ISSUER = 'https://devices.example.com';
    const AUDIENCE = '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/d/providers/p';
    // Set for these tests, whatever the environment says: each refusal is the rule's own.
    let restoreEnv: () => void;
    before(() => {
      restoreEnv = overlayEnv({ TPM_JWT_ALLOW_ANY_TCTI: '', TPM_JWT_ALLOW_REMOTE_TPM: '', TPM_KEY_PIN: 'secret' });
    });
    after(() => restoreEnv());

    /** A credential configuration whose command runs wif-token with `flags`, read in-process. */
    const wifConfiguration = (flags: string): string => {
      const file = path.join(dir, 'credential-configuration.json');
      const command = `tpm-jwt wif-token --key handle:0x81000020 --issuer ${ISSUER} ${flags}`;
      writeFileSync(
        file,
        JSON.stringify({
          type: 'external_account',
          audience: AUDIENCE,
          credential_source: { executable: { command } },
        }),
      );
      return file;
    };
    // Every in-process reader of credential configurations, as a user reaches it.
    const readers = configurationReaders(EMAIL);

    it('accepts localhost, 127.0.0.0/8, ::1 and a Unix socket; refuses every other host in a file', () => {
      for (const tcti of [
        'swtpm:host=localhost',
        'swtpm:host=LocalHost,port=2321',
        'swtpm:host=127.255.0.9,port=2321',
        'mssim:host=::1,port=2321',
        'swtpm:host=0:0:0:0:0:0:0:1',
        'swtpm:port=2321',
        'swtpm:path=/run/swtpm/socket',
        'mssim',
      ]) {
        assert.equal(checkTctiFromFile(tcti, 'sa.json', {}), tcti);
      }
      for (const tcti of [
        'swtpm:host=tpm.example.com,port=2321',
        'mssim:host=10.0.0.7,port=2321',
        'swtpm:host=0.0.0.0',
        'swtpm:host=fd00::2',
        'swtpm:host=::ffff:10.0.0.1',
        'swtpm:host=127.0.0.1.evil.example',
        'swtpm:host=localhost.evil.example',
        // The resolver's other spellings of an address.
        'swtpm:host=127.1',
        'swtpm:host=2130706433',
        'swtpm:host=0x7f.0.0.1',
        'swtpm:host=127.0.0.256',
      ]) {
        assert.throws(
          () => checkTctiFromFile(tcti, 'sa.json', {}),
          { code: 'ERR_INVALID_ARGUMENT', message: /sa\.json: .*not this machine.*TPM_JWT_ALLOW_REMOTE_TPM=1/ },
          tcti,
        );
        // Each opt-in lifts it: the remote one for hosts only, the general one for everything.
        assert.equal(checkTctiFromFile(tcti, 'sa.json', { TPM_JWT_ALLOW_REMOTE_TPM: '1' }), tcti);
        assert.equal(checkTctiFromFile(tcti, 'sa.json', { TPM_JWT_ALLOW_ANY_TCTI: '1' }), tcti);
      }
      assert.throws(() => checkTctiFromFile('cmd:true', 'sa.json', { TPM_JWT_ALLOW_REMOTE_TPM: '1' }), {
        code: 'ERR_INVALID_ARGUMENT',
      });
      for (const tcti of [
        'swtpm:path=run/socket',
        'swtpm:path=',
        'swtpm:path=/run/s,host=127.0.0.1',
        'mssim:path=/s',
      ]) {
        assert.throws(() => checkTctiFromFile(tcti, 'sa.json', {}), { code: 'ERR_INVALID_ARGUMENT' }, tcti);
      }
    });

    it('refuses a descriptor naming another host before connecting; the opt-in lifts it', async () => {
      const listener = await connectionCounter('127.0.0.1');
      try {
        const tcti = `swtpm:host=${address},port=${listener.port}`;
        for (const [entry, open] of entryPoints) {
          await assert.rejects(open(descriptor(tcti)), { code: 'ERR_INVALID_ARGUMENT' }, entry);
        }
        for (const [entry, open] of readers) {
          await assert.rejects(open(wifConfiguration(`--tcti ${tcti}`)), { code: 'ERR_INVALID_ARGUMENT' }, entry);
        }
        assert.equal(listener.connections, 0, 'nothing connected to the host the file named');
        // Opted in, the same descriptor reaches that host (and finds no TPM there).
        const restore = overlayEnv({ TPM_JWT_ALLOW_REMOTE_TPM: '1' });
        try {
          await assert.rejects(jwt.Credentials.fromServiceAccountFile(descriptor(tcti)), {
            code: 'ERR_TPM_CONNECTION',
          });
        } finally {
          restore();
        }
        assert.ok(listener.connections > 0, 'the listener is reachable at that address');
      } finally {
        await listener.close();
      }
    });

    it('refuses --no-encrypt in a credential configuration unless its TPM is a device, before connecting', async () => {
      const listener = await connectionCounter('127.0.0.1');
      try {
        const tcti = `swtpm:host=127.0.0.1,port=${listener.port}`;
        for (const [entry, open] of readers) {
          for (const flags of [
            `--tcti ${tcti} --auth-env TPM_KEY_PIN --no-encrypt`,
            '--tcti swtpm --no-encrypt',
            // No TCTI in the file: the user's own decides, and a swtpm is no device.
            '--no-encrypt',
          ]) {
            await assert.rejects(
              open(wifConfiguration(flags)),
              { code: 'ERR_INVALID_ARGUMENT', message: /--no-encrypt.*only for a device.*TPM_JWT_ALLOW_ANY_TCTI=1/ },
              `${entry}: ${flags}`,
            );
          }
        }
        assert.equal(listener.connections, 0, 'nothing connected');
        // Encrypted, the same configuration connects (and finds no TPM there).
        await assert.rejects(
          TpmIdentityPoolClient.fromCredentialConfiguration(wifConfiguration(`--tcti ${tcti} --auth-env TPM_KEY_PIN`)),
          { code: 'ERR_TPM_CONNECTION' },
        );
        assert.equal(listener.connections, 1);
      } finally {
        await listener.close();
      }
      // Opted in, a file may turn it off.
      const restore = overlayEnv({ TPM_JWT_ALLOW_ANY_TCTI: '1' });
      try {
        await (
          await TpmIdentityPoolClient.fromCredentialConfiguration(wifConfiguration(`--tcti ${swtpm.tcti} --no-encrypt`))
        ).close();
      } finally {
        restore();
      }
    });

    it('cannot send a variable in clear to a host the file names (auth_env, --no-encrypt)', async () => {
      const listener = await connectionCounter('127.0.0.1');
      try {
        const file = wifConfiguration(
          `--tcti swtpm:host=${address},port=${listener.port} --auth-env HOME --no-encrypt`,
        );
        await assert.rejects(TpmIdentityPoolClient.fromCredentialConfiguration(file), { code: 'ERR_INVALID_ARGUMENT' });
        // Allowing remote TPMs keeps the link encrypted.
        const restore = overlayEnv({ TPM_JWT_ALLOW_REMOTE_TPM: '1' });
        try {
          await assert.rejects(TpmIdentityPoolClient.fromCredentialConfiguration(file), {
            code: 'ERR_INVALID_ARGUMENT',
            message: /--no-encrypt/,
          });
        } finally {
          restore();
        }
        assert.equal(listener.connections, 0, 'nothing connected to the host the file named');
      } finally {
        await listener.close();
      }
    });

    it('lets a file turn encryption off for a device TCTI, its own or the user’s', () => {
      const check = (tcti: string | undefined, env: NodeJS.ProcessEnv) => () =>
        checkEncryptFromFile(false, tcti, 'c.json', env);
      assert.doesNotThrow(check('device:/dev/tpmrm0', {}));
      assert.doesNotThrow(check('device', {}));
      assert.doesNotThrow(check(undefined, { TPM2TOOLS_TCTI: 'device:/dev/tpmrm0' }));
      assert.doesNotThrow(check('', { TSS2_TCTI: 'device:/dev/tpm0' }));
      assert.doesNotThrow(check('swtpm', { TPM_JWT_ALLOW_ANY_TCTI: '1' }));
      for (const [tcti, env] of [
        ['swtpm:host=127.0.0.1', {}],
        ['tabrmd', {}],
        ['mssim', { TPM2TOOLS_TCTI: 'device:/dev/tpmrm0' }],
        [undefined, {}],
        [undefined, { TPM2TOOLS_TCTI: 'swtpm' }],
        ['swtpm:host=tpm.example.com', { TPM_JWT_ALLOW_REMOTE_TPM: '1' }],
      ] as const) {
        assert.throws(check(tcti, env), { code: 'ERR_INVALID_ARGUMENT', message: /^c\.json: / }, String(tcti));
      }
      // Encryption on is always fine.
      assert.doesNotThrow(() => checkEncryptFromFile(undefined, 'swtpm', 'c.json', {}));
      assert.doesNotThrow(() => checkEncryptFromFile(true, 'swtpm', 'c.json', {}));
    });
  });
});

/**
 * A host the file rule does not take for this machine (only 127.0.0.0/8, ::1 and localhost
 * are), yet one that reaches a listener on 127.0.0.1: Linux connects 0.0.0.0 to the local
 * host. The test sees what a remote host would, and no traffic leaves loopback.
 */
const address = '0.0.0.0';

/** A TCP listener on `host` that counts connections and drops each at once: no TPM answers there. */
async function connectionCounter(host: string): Promise<{ port: number; connections: number; close(): Promise<void> }> {
  const counter = { port: 0, connections: 0, close: async () => {} };
  const server = createServer((socket) => {
    counter.connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  counter.port = (server.address() as { port: number }).port;
  counter.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return counter;
}
