import { closeSync, writeSync } from 'node:fs';

import { invalidArgument, TpmJwtError } from '../../errors.js';
import { isLoopback } from '../../loopback.js';
import { startMetadataServer, type MetadataServerOptions } from '../../metadata/server.js';
import { flagValue, listenAddress, optional, required, UsageError, type Values } from '../args.js';
import { bufferedLines } from '../buffered-lines.js';
import { untilSignalled, type Command } from '../command.js';
import { readTextInput } from '../input-file.js';
import { openSigner, SIGNER_OPTIONS } from '../signer-source.js';

const MODES = ['oauth2', 'jwt-access', 'wif'] as const;

export const serveMetadata: Command = {
  usage: `tpm-jwt serve-metadata (--credentials F | --key KEYREF --email EMAIL [--auth-env VAR] [--pcrs sha256:0,7])
         [--kid KID] [--listen 127.0.0.1:8080 [--allow-remote] | --socket PATH [--socket-mode 0600]]
         [--mode oauth2|jwt-access|wif] [--token-url URL] [--mtls-cert F] [--scope S ...]
         [--project-id P] [--numeric-project-id N] [--instance-id N] [--zone Z] [--universe-domain D]
         [--ready-fd N]

A GCE-compatible metadata server that mints from the TPM key, for every process
and language on the device: point Application Default Credentials at it with
GCE_METADATA_HOST=127.0.0.1:8080 (Node, Go, Java) or GCE_METADATA_IP and
GCE_METADATA_ROOT (Python). oauth2 (default) exchanges a TPM-signed assertion for
an access token; jwt-access serves a self-signed JWT with a scope claim; wif takes
--credentials as the credential configuration wif-config wrote (no service-account
key at all). Self-signed tokens carry kid --kid, else the descriptor's private_key_id,
else the key's RFC 7638 thumbprint (as pubkey --format jwks names it; a key uploaded to
Google has Google's key id: pass that). --mtls-cert (the key's certificate, then its
chain) sends the token exchanges to the endpoint's mTLS host over mutual TLS with the
TPM key, for certificate-based access. One JSON line per request on stderr; SIGTERM
or SIGINT drains and exits 0.

It listens on loopback only: --listen on any other address (0.0.0.0, a LAN
address, a host name) hands this account's tokens to every machine that can reach
it, and is refused unless --allow-remote says that is meant. Requests that came
through a proxy (Forwarded, Via, X-Forwarded-*, X-Real-IP) are refused, as are those
with two Host headers. New scope sets and audiences (each a TPM signing and an
exchange) are limited to 10 a minute after a burst of 20; past that they get 429,
while those already served are never limited.

  tpm-jwt serve-metadata --credentials sa-tpm.json
  tpm-jwt serve-metadata --mode wif --credentials wif/credential-configuration.json`,
  options: {
    ...SIGNER_OPTIONS,
    mode: { type: 'string' },
    'token-url': { type: 'string' },
    'mtls-cert': { type: 'string' },
    listen: { type: 'string' },
    'allow-remote': { type: 'boolean' },
    socket: { type: 'string' },
    'socket-mode': { type: 'string' },
    scope: { type: 'string', multiple: true },
    'project-id': { type: 'string' },
    'numeric-project-id': { type: 'string' },
    'instance-id': { type: 'string' },
    zone: { type: 'string' },
    'universe-domain': { type: 'string' },
    'ready-fd': { type: 'string' },
  },
  async run(values, io) {
    const mode = (optional(values, 'mode') ?? 'oauth2') as (typeof MODES)[number];
    if (!MODES.includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}`);
    const place = listenPlace(values);
    const readyFd = optional(values, 'ready-fd');
    const fd = readyFd === undefined ? undefined : flagValue('ready-fd', readyFd, parseFd);
    const scopes = values['scope'] as string[] | undefined;
    // One write per event-loop turn, not per request; whatever is held goes out before exit.
    const logs = bufferedLines((text) => io.err(text));
    const common = {
      ...place,
      ...(scopes !== undefined && { scopes }),
      ...optionalStrings(values, {
        'numeric-project-id': 'numericProjectId',
        'instance-id': 'instanceId',
        zone: 'zone',
        'universe-domain': 'universeDomain',
      }),
      log: logs.line,
    };
    const projectId = optional(values, 'project-id');

    let options: MetadataServerOptions;
    let release = async () => {};
    if (mode === 'wif') {
      // The configuration's command names the key and how it signs.
      const ignored = ['key', 'kid', 'auth-env', 'pcrs', 'token-url', 'mtls-cert'].find(
        (flag) => values[flag] !== undefined,
      );
      if (ignored !== undefined)
        throw new UsageError(`--${ignored} does not go with --mode wif: the configuration says`);
      const email = optional(values, 'email');
      options = {
        ...common,
        mode,
        credentialConfiguration: required(values, 'credentials'),
        ...(email !== undefined && { email }),
        ...(projectId !== undefined && { projectId }),
      };
    } else {
      const mtlsCert = optional(values, 'mtls-cert');
      const certificate = mtlsCert === undefined ? undefined : await readTextInput(mtlsCert);
      const { signer, email, info } = await openSigner(values, io, { defaultKid: true });
      release = async () => await signer.close?.();
      const tokenUrl = optional(values, 'token-url');
      const project = projectId ?? info?.project_id;
      const universeDomain = common.universeDomain ?? info?.universe_domain;
      options = {
        ...common,
        mode,
        signer,
        email,
        ...(tokenUrl !== undefined && { tokenUrl }),
        ...(certificate !== undefined && { mtls: { certificate } }),
        ...(project !== undefined && { projectId: project }),
        ...(universeDomain !== undefined && { universeDomain }),
      };
    }

    process.once('exit', logs.flush);
    try {
      const server = await startMetadataServer(options);
      try {
        if (fd !== undefined) {
          writeSync(fd, `${server.url}\n`);
          closeSync(fd);
        }
      } catch (err) {
        await server.close();
        throw new TpmJwtError('ERR_INVALID_ARGUMENT', `--ready-fd ${fd}: ${(err as Error).message}`);
      }
      await untilSignalled();
      await server.close();
    } finally {
      logs.flush();
      process.off('exit', logs.flush);
      await release();
    }
  },
};

/**
 * --listen HOST:PORT (a HOST not loopback only with --allow-remote) or --socket PATH
 * (with --socket-mode), at most one of them. Checked before the TPM is opened.
 */
function listenPlace(
  values: Values,
): Pick<MetadataServerOptions, 'host' | 'port' | 'socket' | 'socketMode' | 'allowRemote'> {
  const socket = optional(values, 'socket');
  const listen = optional(values, 'listen');
  const mode = optional(values, 'socket-mode');
  const allowRemote = values['allow-remote'] === true;
  if (socket !== undefined) {
    if (listen !== undefined) throw new UsageError('give --listen or --socket, not both');
    if (allowRemote) throw new UsageError('--allow-remote goes with --listen');
    if (mode !== undefined && !/^0?[0-7]{3}$/.test(mode)) throw new UsageError('--socket-mode must be octal, as 0660');
    return { socket, ...(mode !== undefined && { socketMode: parseInt(mode, 8) }) };
  }
  if (mode !== undefined) throw new UsageError('--socket-mode goes with --socket');
  const { host, port } = listenAddress(values, '127.0.0.1:8080');
  if (!allowRemote && !isLoopback(host)) {
    throw invalidArgument(
      `--listen ${listen} is not loopback: every machine that reaches it would get this account's tokens; ` +
        'add --allow-remote if that is meant',
    );
  }
  return { host, port, ...(allowRemote && { allowRemote }) };
}

function parseFd(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 3) throw new UsageError('--ready-fd must be a descriptor number >= 3');
  return Number(text);
}

/** The string flags given, renamed to their option names. */
function optionalStrings<K extends string>(values: Values, names: Record<string, K>) {
  const out: Partial<Record<K, string>> = {};
  for (const [flag, key] of Object.entries(names)) {
    const value = optional(values, flag);
    if (value !== undefined) out[key] = value;
  }
  return out;
}
