/**
 * serve-metadata: a GCE-compatible metadata server minting from the TPM key, proven
 * with the clients that use one: google-auth-library's ADC (with a Storage client) and
 * Debian's python3-google-auth, each pointed at it as their users would; then its
 * caching, its refusals, a fuzz, TPM loss, draining, and federation (wif mode).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { writeFileSync, statSync, readFileSync } from 'node:fs';
import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { decodeJwt } from 'jose';

import { startSoftwareTpm, type SoftwareTpm } from '../lib/testing/index.js';
import { publicJwk, Tpm, TpmSigner, type Signer, type TpmKey } from '../lib/index.js';
import { CLOUD_PLATFORM_SCOPE } from '../lib/google/index.js';
import { isLoopback } from '../lib/loopback.js';
import { allowedHosts } from '../lib/metadata/guard.js';
import { bufferedLines } from '../lib/cli/buffered-lines.js';
import { TokenCache } from '../lib/jwt/token-cache.js';
import { NewKeyRate, tokenAtRate } from '../lib/metadata/new-key-rate.js';
import { startMetadataServer, type MetadataServer, type MetadataServerOptions } from '../lib/metadata/index.js';
import { countingSigner } from './helpers/counting-signer.js';
import { startFakeGoogle, type FakeGoogle } from './helpers/fake-google.js';
import { startFakeSts } from './helpers/fake-sts.js';
import { prng } from './helpers/prng.js';
import { assertFails, cli } from './helpers/cli.js';
import { useSwtpm } from './helpers/swtpm.js';
import { overlayEnv } from './helpers/env.js';
import { tpm2 } from './helpers/tools.js';

const run = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.join(HERE, '..', 'lib', 'cli', 'main.ts');
const EMAIL = 'device@p1.iam.gserviceaccount.com';
const HANDLE = 0x81008801;
const FLAVOR = { 'metadata-flavor': 'Google' };
const V1 = '/computeMetadata/v1';
// Debian's python3-google-auth, not a pyenv or venv python earlier on PATH.
const PYTHON = '/usr/bin/python3';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A GET as any client sends it, with the headers given (Host too: fetch cannot set it). */
function get(
  server: MetadataServer | { socketPath: string },
  urlPath: string,
  headers: Record<string, string> = FLAVOR,
  agent?: Agent,
): Promise<Answer> {
  const where = 'socketPath' in server ? { socketPath: server.socketPath } : { host: '127.0.0.1', port: port(server) };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ ...where, path: urlPath, headers, ...(agent && { agent }) }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const port = (server: MetadataServer) => Number(new URL(server.url).port);

/** `head` (request line and header lines) sent as written, on a connection of its own; the answer's status. */
function rawStatus(server: MetadataServer, head: string[]): Promise<{ status: number; answer: string }> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = connect(port(server), '127.0.0.1', () => socket.write(`${head.join('\r\n')}\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = /^HTTP\/1\.1 ([0-9]{3}) /.exec(answer);
      if (status) resolve({ status: Number(status[1]), answer });
      else reject(new Error(`no HTTP answer: ${JSON.stringify(answer.slice(0, 200))}`));
    });
  });
}

/** A fake Google whose token endpoint issues opaque access tokens and ID tokens, counted. */
function issueTokens(google: FakeGoogle) {
  const issued = { access: 0, id: 0 };
  google.onToken = (assertion) => {
    if (typeof assertion['target_audience'] === 'string') {
      issued.id++;
      const claims = { aud: assertion['target_audience'], exp: Math.floor(Date.now() / 1000) + 3600, n: issued.id };
      return { body: { id_token: `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig` } };
    }
    const token = `ya29.${++issued.access}.${String(assertion['scope']).replace(/\s/g, '+')}`;
    google.acceptedTokens.add(token);
    return { body: { access_token: token, expires_in: 3000, token_type: 'Bearer' } };
  };
  return issued;
}

describe('60 metadata server backed by the TPM', function () {
  this.timeout(120_000);
  const swtpm = useSwtpm();
  let key: TpmKey;
  let tpmSigner: Signer;
  let signer: Signer & { count: number };
  let google: FakeGoogle;
  let issued: { access: number; id: number };
  let server: MetadataServer;

  async function start(options: Partial<MetadataServerOptions> = {}): Promise<MetadataServer> {
    const started = await startMetadataServer({
      signer,
      email: EMAIL,
      tokenUrl: google.tokenUrl,
      port: 0,
      ...options,
    } as MetadataServerOptions);
    swtpm.cleanup(() => started.close());
    return started;
  }

  before(async () => {
    const tpm = await swtpm.openTpm();
    key = await tpm.createKey({ alg: 'RS256', persist: HANDLE });
    swtpm.cleanup(() => tpm.evict(HANDLE));
    tpmSigner = await TpmSigner.open({ key: `handle:0x${HANDLE.toString(16)}`, tcti: swtpm.tcti });
    swtpm.cleanup(() => tpmSigner.close?.());
    signer = countingSigner(tpmSigner);
    google = await startFakeGoogle(key.publicKey);
    swtpm.cleanup(() => google.close());
    issued = issueTokens(google);
    server = await start({
      projectId: 'p1',
      numericProjectId: '123456789012',
      instanceId: '4567890123456789012',
      zone: 'europe-west1-b',
    });
  });

  it("answers GCE's paths in GCE's formats, Metadata-Flavor on every answer", async () => {
    const json = 'application/json';
    const text = 'application/text';
    const cases: [string, number, string, string | RegExp][] = [
      ['/', 200, text, 'computeMetadata/\n'],
      [`${V1}/instance`, 200, text, /^attributes\/\nid\nservice-accounts\/\nzone\n$/],
      [`${V1}/instance/service-accounts/`, 200, text, `default/\n${EMAIL}/\n`],
      [`${V1}/instance/service-accounts/default/`, 200, text, 'aliases\nemail\nidentity\nscopes\ntoken\n'],
      [
        `${V1}/instance/service-accounts/default/?recursive=true`,
        200,
        json,
        JSON.stringify({ aliases: ['default'], email: EMAIL, scopes: [CLOUD_PLATFORM_SCOPE] }),
      ],
      [`${V1}/instance/service-accounts/${EMAIL}/email`, 200, text, EMAIL],
      [`${V1}/instance/service-accounts/default/scopes`, 200, text, `${CLOUD_PLATFORM_SCOPE}\n`],
      [`${V1}/instance/service-accounts/default/aliases`, 200, text, 'default\n'],
      [`${V1}/project/project-id`, 200, text, 'p1'],
      [`${V1}/project/project-id?alt=json`, 200, json, '"p1"'],
      [`${V1}/project/numeric-project-id`, 200, text, '123456789012'],
      [`${V1}/instance/id`, 200, text, '4567890123456789012'],
      // Ids past 2^53 stay bare numbers with every digit, as GCE writes them.
      [`${V1}/instance/?recursive=true`, 200, json, /"id":4567890123456789012,/],
      [
        `${V1}/project/?recursive=true`,
        200,
        json,
        '{"attributes":{},"projectId":"p1","numericProjectId":123456789012}',
      ],
      [`${V1}/instance/zone`, 200, text, 'projects/123456789012/zones/europe-west1-b'],
      [`${V1}/universe/universe-domain`, 200, text, 'googleapis.com'],
      [`${V1}/instance/hostname`, 404, text, /Not found/],
      [`${V1}/instance/service-accounts/other@p1.iam.gserviceaccount.com/token`, 404, text, /Not found/],
      ['/computeMetadata/v2/', 404, text, /Not found/],
    ];
    for (const [urlPath, status, type, body] of cases) {
      const answer = await get(server, urlPath);
      assert.equal(answer.status, status, urlPath);
      assert.equal(answer.headers['metadata-flavor'], 'Google', urlPath);
      assert.equal(answer.headers['content-type'], type, urlPath);
      if (typeof body === 'string') assert.equal(answer.body, body, urlPath);
      else assert.match(answer.body, body, urlPath);
    }
  });

  it('token: one exchange of a TPM-signed assertion, cached, ?scopes honoured, expires_in what is left', async () => {
    const before = { access: issued.access, signs: signer.count };
    const first = JSON.parse((await get(server, `${V1}/instance/service-accounts/default/token`)).body);
    assert.deepEqual(Object.keys(first), ['access_token', 'expires_in', 'token_type']);
    assert.equal(first.token_type, 'Bearer');
    assert.ok(first.expires_in <= 3000 && first.expires_in >= 2990, String(first.expires_in));
    const again = JSON.parse((await get(server, `${V1}/instance/service-accounts/${EMAIL}/token`)).body);
    assert.equal(again.access_token, first.access_token);
    assert.equal(issued.access - before.access, 1);
    assert.equal(signer.count - before.signs, 1);
    await new Promise((r) => setTimeout(r, 1100));
    const later = JSON.parse((await get(server, `${V1}/instance/service-accounts/default/token`)).body);
    assert.equal(later.access_token, first.access_token);
    assert.ok(later.expires_in < first.expires_in, 'expires_in is what is left, not what Google said');
    const assertion = google.requests.filter((r) => r.path === '/token').at(-1)!.claims!;
    assert.equal(assertion['scope'], CLOUD_PLATFORM_SCOPE);
    assert.equal(assertion.iss, EMAIL);

    const scoped = JSON.parse(
      (await get(server, `${V1}/instance/service-accounts/default/token?scopes=scope-b,scope-a`)).body,
    );
    assert.notEqual(scoped.access_token, first.access_token);
    assert.equal(google.requests.filter((r) => r.path === '/token').at(-1)!.claims!['scope'], 'scope-a scope-b');
    assert.equal((await get(server, `${V1}/instance/service-accounts/default/token?scopes=`)).status, 400);
  });

  it('identity?audience=A: an ID token per audience; format=full taken; no audience is a 400', async () => {
    const first = await get(server, `${V1}/instance/service-accounts/default/identity?audience=https://a.run.app`);
    assert.equal(first.status, 200);
    assert.equal(first.headers['content-type'], 'application/text');
    assert.equal(decodeJwt(first.body).aud, 'https://a.run.app');
    const full = await get(
      server,
      `${V1}/instance/service-accounts/default/identity?audience=https://a.run.app&format=full&licenses=FALSE`,
    );
    assert.equal(full.body, first.body, 'cached per audience');
    const other = await get(server, `${V1}/instance/service-accounts/default/identity?audience=https://b.run.app`);
    assert.equal(decodeJwt(other.body).aud, 'https://b.run.app');
    assert.equal(issued.id, 2);
    assert.equal((await get(server, `${V1}/instance/service-accounts/default/identity`)).status, 400);
    assert.equal(
      (await get(server, `${V1}/instance/service-accounts/default/identity?audience=a&format=x`)).status,
      400,
    );
  });

  it("google-auth-library's ADC finds it with GCE_METADATA_HOST, and a Storage client lists buckets", async () => {
    const home = swtpm.tempDir('adc-home');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(HERE, 'fixtures', 'adc-node.ts')], {
      env: {
        ...process.env,
        HOME: home,
        GOOGLE_APPLICATION_CREDENTIALS: '',
        GCE_METADATA_HOST: server.host!,
        FAKE_GOOGLE_ORIGIN: google.origin,
      },
      cwd: path.join(HERE, '..'),
    });
    const found = JSON.parse(stdout);
    assert.equal(found.client, 'Compute');
    assert.equal(found.projectId, 'p1');
    assert.equal(found.email, EMAIL);
    assert.deepEqual(found.buckets, ['b1']);
    assert.ok(google.acceptedTokens.has(found.token), 'the token came from the exchange');
    const list = google.requests.filter((r) => r.path === '/storage/v1/b').at(-1)!;
    assert.ok(list.bearer!.startsWith('ya29.'), 'Storage sent the metadata token');
  });

  it("Debian's python3-google-auth: google.auth.default() with GCE_METADATA_ROOT/IP, then a request", async () => {
    const home = swtpm.tempDir('py-home');
    const { stdout } = await run(PYTHON, [path.join(HERE, 'fixtures', 'adc_python.py')], {
      env: {
        PATH: process.env['PATH']!,
        HOME: home,
        GCE_METADATA_ROOT: server.host!,
        GCE_METADATA_IP: server.host!,
        FAKE_GOOGLE_ORIGIN: google.origin,
      },
    });
    const found = JSON.parse(stdout);
    assert.equal(found.credentials, 'google.auth.compute_engine.credentials.Credentials');
    assert.equal(found.project, 'p1');
    assert.equal(found.email, EMAIL);
    assert.equal(found.status, 200);
    assert.deepEqual(found.buckets, ['b1']);
    assert.ok(google.acceptedTokens.has(found.token));
  });

  it('1,000 concurrent token requests: all 200, one TPM signing', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1000 });
    try {
      const before = signer.count;
      const answers = await Promise.all(
        Array.from({ length: 1000 }, () =>
          get(server, `${V1}/instance/service-accounts/default/token?scopes=concurrent`, FLAVOR, agent),
        ),
      );
      assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
      assert.equal(new Set(answers.map((a) => JSON.parse(a.body).access_token)).size, 1);
      assert.equal(signer.count - before, 1);
    } finally {
      agent.destroy();
    }
  });

  it('tpm-jwt/metadata serves jwt-access tokens without loading google-auth-library', () => {
    const script = `
      import { createRequire } from 'node:module';
      import { generateKeyPairSync } from 'node:crypto';
      import { SoftwareSigner } from 'tpm-jwt';
      import { startMetadataServer } from 'tpm-jwt/metadata';
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const signer = SoftwareSigner.fromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
      const server = await startMetadataServer({ mode: 'jwt-access', signer, email: 'a@b', port: 0 });
      const answer = await fetch(server.url + '${V1}/instance/service-accounts/default/token', {
        headers: { 'metadata-flavor': 'Google' },
      });
      const { token_type } = await answer.json();
      await server.close();
      const loaded = Object.keys(createRequire(import.meta.url)('node:module')._cache);
      console.log(token_type, loaded.filter((f) => f.includes('google-auth-library')).length);`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(result.stdout.trim(), 'Bearer 0', result.stderr);
  });

  describe('refusals', () => {
    const token = `${V1}/instance/service-accounts/default/token`;
    const host = () => `127.0.0.1:${port(server)}`;

    it('refuses requests without Metadata-Flavor: Google, via a proxy, for another Host, or not a GET', async () => {
      const refused: [string, Record<string, string>, number][] = [
        ['no Metadata-Flavor', {}, 403],
        ['Metadata-Flavor: google', { 'metadata-flavor': 'google' }, 403],
        ['X-Forwarded-For', { ...FLAVOR, 'x-forwarded-for': '10.0.0.1' }, 403],
        ['X-Forwarded-For, empty', { ...FLAVOR, 'x-forwarded-for': '' }, 403],
        ['a rebinding Host', { ...FLAVOR, host: 'attacker.example' }, 403],
        ['a Host that ends like ours', { ...FLAVOR, host: 'evil.metadata.google.internal' }, 403],
      ];
      for (const [what, headers, status] of refused) {
        const answer = await get(server, token, { host: host(), ...headers });
        assert.equal(answer.status, status, what);
        assert.equal(answer.headers['metadata-flavor'], 'Google', what);
        assert.doesNotMatch(answer.body, /access_token|ya29/, what);
      }
      const names = [
        'metadata.google.internal',
        'metadata.google.internal.',
        'METADATA',
        '169.254.169.254:80',
        'localhost',
      ];
      for (const name of names) {
        assert.equal((await get(server, `${V1}/project/project-id`, { ...FLAVOR, host: name })).status, 200, name);
      }
      const post = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({
          host: '127.0.0.1',
          port: port(server),
          path: token,
          method: 'POST',
          headers: FLAVOR,
        });
        req.on('response', (res) => (res.resume(), resolve(res.statusCode!)));
        req.on('error', reject);
        req.end('{}');
      });
      assert.equal(post, 405);
    });

    it('refuses Forwarded, Via and every other proxy marker, not only X-Forwarded-For (403)', async () => {
      const markers: Record<string, string> = {
        forwarded: 'for=192.0.2.60;proto=http;by=203.0.113.43',
        Forwarded: 'for=unknown',
        via: '1.1 proxy.example',
        Via: 'HTTP/1.1 squid',
        'x-forwarded-host': 'metadata.google.internal',
        'x-forwarded-proto': 'http',
        'x-real-ip': '10.0.0.1',
      };
      for (const [name, value] of Object.entries(markers)) {
        const answer = await get(server, token, { ...FLAVOR, host: host(), [name]: value });
        assert.equal(answer.status, 403, name);
        assert.doesNotMatch(answer.body, /access_token|ya29/, name);
      }
      assert.equal((await get(server, token, { ...FLAVOR, host: host() })).status, 200, 'without one, served');
    });

    it('refuses a request with two Host headers (400), in either order, even when both name it', async () => {
      const ours = `Host: ${host()}`;
      const pairs = [
        [ours, 'Host: attacker.example'],
        ['Host: attacker.example', ours],
        [ours, ours],
        [ours, 'host: metadata.google.internal'],
      ];
      for (const [first, second] of pairs) {
        const head = [`GET ${token} HTTP/1.1`, first!, 'Metadata-Flavor: Google', second!, 'Connection: close'];
        const { status, answer } = await rawStatus(server, head);
        assert.equal(status, 400, `${first} then ${second}`);
        assert.doesNotMatch(answer, /access_token|ya29/);
      }
      const one = await rawStatus(server, [
        `GET ${token} HTTP/1.1`,
        ours,
        'Metadata-Flavor: Google',
        'Connection: close',
      ]);
      assert.equal(one.status, 200, 'one Host is served');
    });

    it('listens on a host that is not loopback only with allowRemote (ERR_INVALID_ARGUMENT)', async () => {
      for (const notLoopback of ['0.0.0.0', '::', '192.0.2.1', 'fe80::1', 'metadata.example', '::ffff:10.0.0.1']) {
        assert.equal(isLoopback(notLoopback), false, notLoopback);
        await assert.rejects(start({ host: notLoopback }), { code: 'ERR_INVALID_ARGUMENT', message: /allowRemote/ });
      }
      for (const loopback of [
        '127.0.0.1',
        '127.1.2.3',
        'localhost',
        'LOCALHOST',
        '::1',
        '0:0:0:0:0:0:0:1',
        '::ffff:127.0.0.1',
      ]) {
        assert.equal(isLoopback(loopback), true, loopback);
      }
      const local = await start({ host: '127.0.0.2' });
      assert.match(local.host!, /^127\.0\.0\.2:[0-9]+$/, 'any loopback address needs no opt-in');
      await local.close();
      // With the opt-in the check passes and listening is tried (192.0.2.1, TEST-NET-1, is no address of ours).
      await assert.rejects(start({ host: '192.0.2.1', allowRemote: true }), {
        code: 'ERR_INVALID_ARGUMENT',
        message: /cannot listen/,
      });
    });

    it('serve-metadata --listen off loopback needs --allow-remote, checked before the TPM', async () => {
      // A TCTI that reaches nothing: the refusal must come first.
      const keyArgs = ['--key', '0x81000001', '--email', EMAIL, '--tcti', 'swtpm:host=127.0.0.1,port=1'];
      for (const listen of ['0.0.0.0:8080', '[::]:8080', '192.0.2.1:80']) {
        const result = await cli(['serve-metadata', ...keyArgs, '--listen', listen]);
        assertFails(result, 1, 'ERR_INVALID_ARGUMENT');
        assert.match(result.stderr, /--allow-remote/);
      }
      const withSocket = await cli(['serve-metadata', ...keyArgs, '--socket', '/nonexistent/s', '--allow-remote']);
      assert.equal(withSocket.code, 2, withSocket.stderr);
      const help = await cli(['serve-metadata', '--help']);
      assert.match(help.stdout + help.stderr, /--allow-remote/);
    });

    it('binds loopback unless told otherwise; on a wildcard address answers to its interfaces only', async () => {
      const own = await start({ port: 0 });
      assert.match(own.host!, /^127\.0\.0\.1:[0-9]+$/);
      await own.close();
      const wildcard = allowedHosts('0.0.0.0');
      for (const info of Object.values(networkInterfaces()).flat()) {
        assert.ok(wildcard.has(info!.address.toLowerCase()), info!.address);
      }
      assert.ok(!wildcard.has('attacker.example'));
      assert.ok(!allowedHosts('127.0.0.1').has('0.0.0.0'));
    });

    it('refuses ids that are not numbers, before it listens', async () => {
      await assert.rejects(start({ instanceId: 'my-vm' }), { code: 'ERR_INVALID_ARGUMENT', message: /instanceId/ });
      await assert.rejects(start({ numericProjectId: '12x' }), { code: 'ERR_INVALID_ARGUMENT' });
    });

    it('serves on a unix socket with the mode given; never replaces a file; replaces a stale socket', async () => {
      const dir = swtpm.tempDir('socket');
      const socketPath = path.join(dir, 'metadata.sock');
      const own = await start({ socket: socketPath, socketMode: 0o660 });
      assert.equal(own.url, `unix:${socketPath}`);
      assert.equal(statSync(socketPath).mode & 0o777, 0o660);
      assert.equal((await get({ socketPath }, `${V1}/instance/service-accounts/default/email`)).body, EMAIL);
      await assert.rejects(start({ socket: socketPath }), { code: 'ERR_INVALID_ARGUMENT', message: /listening/ });
      await own.close();

      const file = path.join(dir, 'not-a-socket');
      writeFileSync(file, 'keep me');
      await assert.rejects(start({ socket: file }), { code: 'ERR_INVALID_ARGUMENT', message: /not a socket/ });
      assert.equal(readFileSync(file, 'utf8'), 'keep me');

      // A socket left by a server that died: nobody answers on it, so it is replaced.
      const stale = path.join(dir, 'stale.sock');
      const dead = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)})`]);
      while (!(await exists(stale))) await new Promise((r) => setTimeout(r, 20));
      dead.kill('SIGKILL');
      await new Promise((r) => dead.once('exit', r));
      const revived = await start({ socket: stale });
      assert.equal(statSync(stale).mode & 0o777, 0o600);
      await revived.close();
    });

    it('survives a fuzz of paths, headers and queries, and raw garbage; no token but where one was asked', async () => {
      const real = JSON.parse((await get(server, token)).body).access_token as string;
      const random = prng(8801);
      const pieces = [
        'computeMetadata',
        'v1',
        'instance',
        'service-accounts',
        'default',
        EMAIL,
        'token',
        'identity',
        'project',
        'project-id',
        '..',
        '.',
        '%2e%2e',
        '%00',
        '%ZZ',
        '',
        '%2F',
        '__proto__',
        'constructor',
        'a'.repeat(300),
      ];
      const queries = [
        'recursive=true',
        'alt=json',
        'alt=text',
        'scopes=x,y',
        'scopes=',
        'audience=a',
        'format=full',
        '%',
        '&&',
        'scopes=%0a',
      ];
      const hosts = [host(), 'metadata.google.internal', 'attacker.example', '', '[::1]:1', 'a:b:c', '127.0.0.1:99999'];
      const agent = new Agent({ keepAlive: true, maxSockets: 50 });
      try {
        for (let batch = 0; batch < 60; batch++) {
          const sent = Array.from({ length: 50 }, () => {
            const segments = Array.from({ length: 1 + random.int(7) }, () => random.pick(pieces));
            const query = Array.from({ length: random.int(3) }, () => random.pick(queries)).join('&');
            const urlPath = `/${segments.join('/')}${query ? `?${query}` : ''}`;
            const headers: Record<string, string> = { host: random.pick(hosts) };
            if (random.next() < 0.8) headers['metadata-flavor'] = random.pick(['Google', 'Google', 'google', 'x']);
            if (random.next() < 0.1) headers['x-forwarded-for'] = '1.2.3.4';
            return get(server, urlPath, headers, agent).then((answer) => ({ urlPath, answer }));
          });
          for (const { urlPath, answer } of await Promise.all(sent)) {
            assert.ok([200, 400, 403, 404].includes(answer.status), `${urlPath}: ${answer.status}`);
            assert.equal(answer.headers['metadata-flavor'], 'Google', urlPath);
            if (answer.body.includes(real)) {
              assert.equal(answer.status, 200, urlPath);
              assert.match(urlPath, /\/token(\?|$)/, urlPath);
            }
          }
        }
      } finally {
        agent.destroy();
      }
      for (let i = 0; i < 50; i++) {
        const garbage =
          i % 2
            ? Buffer.from(Array.from({ length: 1 + random.int(2000) }, () => random.int(256)))
            : Buffer.from(`GET /${'x'.repeat(random.int(20000))} HTTP/1.1\r\nHost: \u0000\r\n\r\n`);
        await new Promise<void>((resolve) => {
          const socket = connect(port(server), '127.0.0.1', () => socket.end(garbage));
          socket.on('data', () => {});
          socket.on('error', () => resolve());
          socket.on('close', () => resolve());
        });
      }
      assert.equal((await get(server, token)).status, 200, 'still serving');
    });
  });

  describe('new scope sets and audiences, at a bounded rate', () => {
    const tokenPath = `${V1}/instance/service-accounts/default/token`;
    const identityPath = `${V1}/instance/service-accounts/default/identity`;

    it('NewKeyRate: a bucket of burst keys, refilled at perMinute (a clock of its own)', () => {
      let now = 0;
      const rate = new NewKeyRate(60, 2, () => now);
      assert.deepEqual([rate.take(), rate.take(), rate.take()], [true, true, false]);
      now += 999;
      assert.equal(rate.take(), false, 'not a whole key yet');
      now += 2;
      assert.deepEqual([rate.take(), rate.take()], [true, false]);
      now += 3_600_000;
      assert.deepEqual([rate.take(), rate.take(), rate.take()], [true, true, false], 'never more than burst');
      const never = new NewKeyRate(0, 1, () => now);
      now += 3_600_000;
      assert.deepEqual([never.take(), never.take()], [true, false]);
    });

    it('tokenAtRate: kept and pinned keys are never limited; a new one is fetched as the rate allows', async () => {
      const fetched: string[] = [];
      const tokens = new TokenCache(
        async (key: string) => (fetched.push(key), { token: key, expiry: new Date(Date.now() + 3_600_000) }),
        { maxSize: 32, pinned: ['pinned'] },
      );
      const rate = new NewKeyRate(0, 1);
      assert.equal((await tokenAtRate(tokens, 'a', rate))?.token, 'a');
      assert.equal(tokenAtRate(tokens, 'b', rate), undefined);
      assert.equal(tokens.has('b'), false, 'a refused key is not kept');
      for (let i = 0; i < 100; i++) {
        assert.equal((await tokenAtRate(tokens, 'a', rate))?.token, 'a');
        assert.equal((await tokenAtRate(tokens, 'pinned', rate))?.token, 'pinned');
      }
      assert.deepEqual(fetched, ['a', 'pinned']);
    });

    it('tokenAtRate: a key whose fetch failed (a made-up scope Google refused) stays new to the rate', async () => {
      let fetches = 0;
      const tokens = new TokenCache<string>(
        async () => {
          fetches++;
          throw Object.assign(new Error('invalid_scope'), { code: 'ERR_TOKEN_EXCHANGE' });
        },
        { maxSize: 32 },
      );
      const rate = new NewKeyRate(0, 2);
      for (let i = 0; i < 10; i++) {
        const answer = tokenAtRate(tokens, 'made-up', rate);
        if (answer) await assert.rejects(answer, { code: 'ERR_TOKEN_EXCHANGE' });
      }
      assert.equal(fetches, 2, 'each retry of a failing key took a new key from the rate');
    });

    it('answers 429 past the rate (scope sets and audiences alike) without signing; known ones 200', async () => {
      const own = await start({ newScopesAndAudiences: { perMinute: 0, burst: 3 } });
      const signs = signer.count;
      const statuses = async (paths: string[]) =>
        (await Promise.all(paths.map((p) => get(own, p)))).map((a) => a.status);
      assert.deepEqual(await statuses([tokenPath]), [200], 'the default scope set is pinned, never counted');
      assert.deepEqual(
        await statuses([
          `${tokenPath}?scopes=rate-a`,
          `${tokenPath}?scopes=rate-b`,
          `${identityPath}?audience=https://r.run.app`,
        ]),
        [200, 200, 200],
      );
      assert.equal(signer.count - signs, 4);
      const refused = [
        await get(own, `${tokenPath}?scopes=rate-c`),
        await get(own, `${identityPath}?audience=https://s.run.app`),
      ];
      for (const answer of refused) {
        assert.equal(answer.status, 429);
        assert.equal(answer.headers['metadata-flavor'], 'Google');
        assert.equal(answer.headers['retry-after'], undefined, 'perMinute 0: no time would do');
        assert.doesNotMatch(answer.body, /access_token|ya29|eyJ/);
      }
      assert.equal(signer.count - signs, 4, 'a refused request costs no signing');
      const known = await statuses([
        ...Array.from({ length: 50 }, (_, i) => `${tokenPath}?scopes=${i % 2 ? 'rate-a' : 'rate-a,rate-a'}`),
        ...Array.from({ length: 50 }, () => `${identityPath}?audience=https://r.run.app`),
        tokenPath,
      ]);
      assert.deepEqual(new Set(known), new Set([200]));
      assert.equal(signer.count - signs, 4, 'known ones come from the cache');
    });

    it('sends Retry-After for a refill interval, and refuses a rate it cannot use (ERR_INVALID_ARGUMENT)', async () => {
      const own = await start({ mode: 'jwt-access', newScopesAndAudiences: { perMinute: 10, burst: 1 } });
      assert.equal((await get(own, `${tokenPath}?scopes=retry-a`)).status, 200);
      const refused = await get(own, `${tokenPath}?scopes=retry-b`);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers['retry-after'], '6');
      for (const bad of [{ burst: 0 }, { burst: 1.5 }, { perMinute: -1 }, { perMinute: Number.NaN }]) {
        await assert.rejects(
          start({ newScopesAndAudiences: bad }),
          { code: 'ERR_INVALID_ARGUMENT' },
          JSON.stringify(bad),
        );
      }
    });
  });

  describe('operations', () => {
    it("serve-metadata's log: lines held briefly, written together, every one; flush() at once", async () => {
      const writes: string[] = [];
      const logs = bufferedLines((text) => writes.push(text), 20, 64);
      logs.line('one');
      logs.line('two');
      assert.deepEqual(writes, [], 'written at once');
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.deepEqual(writes, ['one\ntwo\n']);
      logs.line('x'.repeat(70));
      assert.deepEqual(writes.at(-1), `${'x'.repeat(70)}\n`, 'past maxBytes: written without waiting');
      logs.line('last');
      logs.flush();
      assert.deepEqual(writes.at(-1), 'last\n');
      logs.flush();
      assert.equal(writes.length, 3, 'an empty flush writes nothing');
    });

    it('writes one JSON line per request, and no token in any of them', async () => {
      const lines: string[] = [];
      const own = await start({ mode: 'jwt-access', log: (line) => lines.push(line) });
      const tokenPath = `${V1}/instance/service-accounts/default/token`;
      const answers = [
        await get(own, tokenPath),
        await get(own, `${tokenPath}?scopes=s`),
        await get(own, `${V1}/instance/service-accounts/default/identity?audience=https://a.run.app`),
        await get(own, `${V1}/nope`),
        await get(own, tokenPath, {}),
      ];
      await own.close();
      const entries = lines.map((line) => JSON.parse(line));
      const requests = entries.filter((entry) => entry.path !== undefined);
      assert.deepEqual(
        requests.map((r) => r.status),
        answers.map((a) => a.status),
      );
      for (const entry of requests) {
        assert.deepEqual(Object.keys(entry).slice(0, 5), ['time', 'method', 'path', 'status', 'ms']);
      }
      assert.deepEqual(entries.at(0).event, 'listening');
      assert.deepEqual(entries.at(-1).event, 'closed');
      const all = lines.join('\n');
      for (const answer of answers.filter((a) => a.status === 200)) {
        const token =
          answer.headers['content-type'] === 'application/json' ? JSON.parse(answer.body).access_token : answer.body;
        assert.ok(!all.includes(token), 'a token in the log');
      }
      assert.ok(!/eyJ/.test(all), 'a JWT in the log');
    });

    it('close() lets a request in flight finish, then stops', async () => {
      // A signer that holds the request until the server is draining.
      let signing!: () => void;
      const started = new Promise<void>((resolve) => (signing = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const held: Signer = {
        algorithm: signer.algorithm,
        async sign(message) {
          signing();
          await released;
          return signer.sign(message);
        },
      };
      const own = await start({ signer: held, mode: 'jwt-access' });
      const inFlight = get(own, `${V1}/instance/service-accounts/default/token`);
      await started;
      const closing = own.close();
      release();
      await closing;
      const answer = await inFlight;
      assert.equal(answer.status, 200);
      assert.equal(answer.headers['connection'], 'close', 'an answer given while draining ends its connection');
      assert.equal(decodeJwt(JSON.parse(answer.body).access_token).scope, CLOUD_PLATFORM_SCOPE);
      // A new connection: the one the answer came on is gone with the server.
      await assert.rejects(get(own, `${V1}/project/project-id`, FLAVOR, new Agent()), { code: 'ECONNREFUSED' });
    });

    /** `tpm-jwt serve-metadata ARGS --ready-fd 3` as a process, and what it said on descriptor 3. */
    async function serveMetadata(args: string[]) {
      const keyArgs = ['--key', `0x${HANDLE.toString(16)}`, '--email', EMAIL, '--tcti', swtpm.tcti];
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', MAIN, 'serve-metadata', ...keyArgs, '--ready-fd', '3', ...args],
        { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
      );
      const output = { stderr: '' };
      child.stderr!.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      let ready = '';
      for await (const chunk of child.stdio[3] as NodeJS.ReadableStream) ready += String(chunk);
      return { child, exited, output, ready: ready.trim() };
    }

    it('serve-metadata: ready on --ready-fd, one log line per request, exits 0 on SIGTERM', async () => {
      const { child, exited, output, ready } = await serveMetadata([
        '--mode',
        'jwt-access',
        '--listen',
        '127.0.0.1:0',
        '--project-id',
        'p9',
      ]);
      try {
        const url = new URL(ready);
        const cli = { url: url.href, host: url.host, close: async () => {} } as MetadataServer;
        assert.equal((await get(cli, `${V1}/project/project-id`)).body, 'p9');
        const tokenPath = `${V1}/instance/service-accounts/default/token`;
        const { access_token: jwt } = JSON.parse((await get(cli, tokenPath)).body);
        assert.equal(decodeJwt(jwt).iss, EMAIL);
        child.kill('SIGTERM');
        assert.equal(await exited, 0, output.stderr);
        const lines = output.stderr
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line));
        assert.deepEqual(
          lines.map((l) => l.event ?? l.path),
          ['listening', `${V1}/project/project-id`, tokenPath, 'closed'],
        );
        assert.ok(!output.stderr.includes(jwt));
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('serve-metadata --socket with --socket-mode; exits 0 on SIGINT and leaves no socket answering', async () => {
      const socketPath = path.join(swtpm.tempDir('cli-socket'), 'metadata.sock');
      const { child, exited, output, ready } = await serveMetadata(['--socket', socketPath, '--socket-mode', '0660']);
      try {
        assert.equal(ready, `unix:${socketPath}`);
        assert.equal(statSync(socketPath).mode & 0o777, 0o660);
        assert.equal((await get({ socketPath }, `${V1}/instance/service-accounts/default/email`)).body, EMAIL);
        child.kill('SIGINT');
        assert.equal(await exited, 0, output.stderr);
        await assert.rejects(get({ socketPath }, `${V1}/instance/service-accounts/default/email`));
      } finally {
        child.kill('SIGKILL');
      }
    });
  });

  describe('wif mode: no service-account key anywhere', () => {
    // The configurations name the loopback stand-in STS: read from a file, that takes the opt-in.
    let restoreEnv: () => void;
    before(() => void (restoreEnv = overlayEnv({ TPM_JWT_ALLOW_ANY_ENDPOINT: '1' })));
    after(() => restoreEnv());
    it('serves federated, impersonated access tokens per scope set and ID tokens from generateIdToken', async () => {
      const audience = '//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/d/providers/tpm';
      const issuer = 'https://devices.example.com';
      const sts = await startFakeSts({ audience, issuer, jwks: { keys: [publicJwk(key.publicKey, 'RS256')] } });
      swtpm.cleanup(() => sts.close());
      const configuration = wifConfiguration(swtpm.tempDir('wif-metadata'), {
        audience,
        token_url: sts.tokenUrl,
        service_account_impersonation_url: `${sts.iamUrl}/v1/projects/-/serviceAccounts/${EMAIL}:generateAccessToken`,
        command: `--key 0x${HANDLE.toString(16)} --issuer ${issuer} --tcti ${swtpm.tcti}`,
      });
      const wif = await start({ mode: 'wif', credentialConfiguration: configuration, email: undefined } as never);
      assert.equal((await get(wif, `${V1}/instance/service-accounts/default/email`)).body, EMAIL);
      const tokenPath = `${V1}/instance/service-accounts/default/token`;
      const [a, b] = await Promise.all([get(wif, tokenPath), get(wif, tokenPath)]);
      assert.equal(JSON.parse(a.body).access_token, JSON.parse(b.body).access_token);
      assert.ok(sts.issued.has(JSON.parse(a.body).access_token));
      assert.deepEqual(sts.impersonated, [EMAIL]);
      const scoped = JSON.parse((await get(wif, `${tokenPath}?scopes=s1,s2`)).body);
      assert.ok(sts.issued.has(scoped.access_token));
      assert.equal(sts.scopes.at(-1), 's1 s2');
      const id = await get(wif, `${V1}/instance/service-accounts/default/identity?audience=https://svc.run.app`);
      assert.equal(id.status, 200);
      assert.equal(decodeJwt(id.body).aud, 'https://svc.run.app');
      assert.deepEqual(sts.idTokens, [{ account: EMAIL, audience: 'https://svc.run.app' }]);
      // One subject token, signed once, served every exchange.
      assert.equal(new Set(sts.subjectTokens).size, 1);
      assert.equal(sts.exchanged[0]!.iss, issuer);
    });

    it('without impersonation: federated tokens, the email given, and no ID tokens (404)', async () => {
      const audience = '//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/d/providers/tpm';
      const issuer = 'https://devices.example.com';
      const sts = await startFakeSts({ audience, issuer, jwks: { keys: [publicJwk(key.publicKey, 'RS256')] } });
      swtpm.cleanup(() => sts.close());
      const configuration = wifConfiguration(swtpm.tempDir('wif-direct'), {
        audience,
        token_url: sts.tokenUrl,
        command: `--key 0x${HANDLE.toString(16)} --issuer ${issuer} --tcti ${swtpm.tcti}`,
      });
      await assert.rejects(start({ mode: 'wif', credentialConfiguration: configuration, email: undefined } as never), {
        code: 'ERR_INVALID_ARGUMENT',
        message: /email/,
      });
      const wif = await start({
        mode: 'wif',
        credentialConfiguration: configuration,
        email: 'principal@example',
      } as never);
      assert.equal((await get(wif, `${V1}/instance/service-accounts/default/email`)).body, 'principal@example');
      const token = JSON.parse((await get(wif, `${V1}/instance/service-accounts/default/token`)).body);
      assert.match(token.access_token, /^sts\./, 'the federated token itself');
      assert.deepEqual(sts.impersonated, []);
      const id = await get(wif, `${V1}/instance/service-accounts/default/identity?audience=https://a.run.app`);
      assert.equal(id.status, 404);
    });

    it('serve-metadata --mode wif refuses key flags: the configuration names the key', async () => {
      for (const flag of [
        ['--key', '0x81000001'],
        ['--pcrs', 'sha256:16'],
        ['--token-url', 'https://t'],
      ]) {
        const result = await cli(['serve-metadata', '--mode', 'wif', '--credentials', 'c.json', ...flag]);
        assert.equal(result.code, 2, result.stderr);
        assert.match(result.stderr, new RegExp(`^error \\[USAGE\\]: ${flag[0]} does not go with --mode wif`));
      }
    });

    it('refuses a configuration whose TCTI could run a command, before the TPM is touched', async () => {
      const configuration = wifConfiguration(swtpm.tempDir('wif-bad'), {
        audience: '//iam.googleapis.com/x',
        command: '--key 0x81000001 --issuer https://i --tcti cmd:touch',
      });
      await assert.rejects(start({ mode: 'wif', credentialConfiguration: configuration, email: EMAIL } as never), {
        code: 'ERR_INVALID_ARGUMENT',
        message: /TPM_JWT_ALLOW_ANY_TCTI/,
      });
    });
  });
});

describe('60 metadata server when the TPM goes away', function () {
  this.timeout(60_000);
  let swtpm: SoftwareTpm;
  before(async () => {
    swtpm = await startSoftwareTpm();
  });
  after(async () => {
    await swtpm?.stop();
  });

  it('answers 503 with the code while the TPM is down, and recovers by itself', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    await tpm.createKey({ alg: 'ES256', persist: 0x81008802 });
    await tpm.close();
    const signer = await TpmSigner.open({ key: 'handle:0x81008802', tcti: swtpm.tcti });
    const server = await startMetadataServer({ mode: 'jwt-access', signer, email: EMAIL, port: 0 });
    try {
      const tokenPath = `${V1}/instance/service-accounts/default/token`;
      assert.equal((await get(server, tokenPath)).status, 200);
      await swtpm.kill();
      const down = await get(server, `${tokenPath}?scopes=needs-a-signature`);
      assert.equal(down.status, 503);
      assert.equal(JSON.parse(down.body).error, 'ERR_TPM_CONNECTION');
      assert.equal((await get(server, tokenPath)).status, 200, 'a cached token is still served');
      await swtpm.start();
      const back = await get(server, `${tokenPath}?scopes=needs-a-signature`);
      assert.equal(back.status, 200);
      assert.equal(decodeJwt(JSON.parse(back.body).access_token).scope, 'needs-a-signature');
    } finally {
      await server.close();
      await signer.close?.();
    }
  });
});

describe('60 metadata server with a key bound to PCRs', function () {
  this.timeout(60_000);
  const swtpm = useSwtpm();
  afterEach(() => tpm2(swtpm.tcti, 'pcrreset', '16'));
  // The configurations name the loopback stand-in STS: read from a file, that takes the opt-in.
  let restoreEnv: () => void;
  before(() => void (restoreEnv = overlayEnv({ TPM_JWT_ALLOW_ANY_ENDPOINT: '1' })));
  after(() => restoreEnv());

  it('serves no token, not even a cached one, once the PCRs move; serves again when they hold', async () => {
    const tpm = await swtpm.openTpm();
    const pcrKey = await tpm.createKey({ alg: 'ES256', pcrs: { bank: 'sha256', indexes: [16] } });
    const keyFile = path.join(swtpm.tempDir('pcr-key'), 'key.pem');
    writeFileSync(keyFile, pcrKey.toPem());
    const tpmSigner = await TpmSigner.open({ key: keyFile, tcti: swtpm.tcti });
    swtpm.cleanup(() => tpmSigner.close());
    const direct = await startMetadataServer({ mode: 'jwt-access', signer: tpmSigner, email: EMAIL, port: 0 });
    swtpm.cleanup(() => direct.close());
    // The same key file as the subject-token key of a federation configuration.
    const audience = '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/d/providers/p';
    const issuer = 'https://devices.example.com';
    const sts = await startFakeSts({ audience, issuer, jwks: { keys: [publicJwk(pcrKey.publicKey, 'ES256')] } });
    swtpm.cleanup(() => sts.close());
    const configuration = wifConfiguration(swtpm.tempDir('pcr-wif'), {
      audience,
      token_url: sts.tokenUrl,
      command: `--key ${keyFile} --issuer ${issuer} --tcti ${swtpm.tcti}`,
    });
    const federated = await startMetadataServer({
      mode: 'wif',
      credentialConfiguration: configuration,
      email: EMAIL,
      port: 0,
    });
    swtpm.cleanup(() => federated.close());
    const tokenPath = `${V1}/instance/service-accounts/default/token`;
    const tokens = async () => Promise.all([direct, federated].map((server) => get(server, tokenPath)));
    const first = await tokens();
    assert.deepEqual(
      first.map((a) => a.status),
      [200, 200],
    );

    tpm2(swtpm.tcti, 'pcrextend', `16:sha256=${'ab'.repeat(32)}`);
    // The last check stands for a second.
    await new Promise((r) => setTimeout(r, 1100));
    for (const [i, refused] of (await tokens()).entries()) {
      assert.equal(refused.status, 503, ['jwt-access', 'wif'][i]);
      assert.equal(JSON.parse(refused.body).error, 'ERR_TPM_POLICY_FAIL');
      assert.ok(!refused.body.includes(JSON.parse(first[i]!.body).access_token));
    }
    assert.equal((await get(direct, `${V1}/instance/service-accounts/default/email`)).status, 200, 'metadata still');

    tpm2(swtpm.tcti, 'pcrreset', '16');
    await new Promise((r) => setTimeout(r, 1100));
    for (const [i, again] of (await tokens()).entries()) {
      assert.equal(again.status, 200);
      assert.equal(JSON.parse(again.body).access_token, JSON.parse(first[i]!.body).access_token, 'the cached token');
    }
  });
});

/** A credential configuration whose executable is `tpm-jwt wif-token` with `command`'s arguments. */
function wifConfiguration(dir: string, fields: { command: string } & Record<string, string>): string {
  const { command, ...rest } = fields;
  const file = path.join(dir, 'credential-configuration.json');
  const executable = { command: `tpm-jwt wif-token ${command}` };
  writeFileSync(
    file,
    JSON.stringify({
      type: 'external_account',
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      ...rest,
      credential_source: { executable },
    }),
  );
  return file;
}

async function exists(file: string): Promise<boolean> {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}
