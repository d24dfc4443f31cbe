/**
 * The signer a service-account JSON describes: a standard `service_account` key file
 * signs in software; a `tpm_service_account` descriptor names a key in a TPM.
 *
 * A descriptor is a credentials file: it may come from elsewhere, so what it names is
 * checked before anything acts on it (README, "Security model"): its TCTI
 * is limited to those that only talk to a TPM, its key path is a regular file relative
 * to the descriptor, and auth_env names a plain environment variable.
 */
import { stat, readFile } from 'node:fs/promises';
import * as path from 'node:path';

import { TpmJwtError } from '../errors.js';
import { parseKeyRef } from '../tpm/handle.js';
import { parsePcrs } from '../tpm/pcrs.js';
import { checkTctiFromFile } from '../tpm/tcti-trust.js';
import type { Signer } from './signer.js';
import { SoftwareSigner } from './software-signer.js';
import { TpmSigner, type TpmSignerOptions } from './tpm-signer.js';

export interface ServiceAccountInfo {
  type?: string;
  client_email?: string;
  private_key_id?: string;
  private_key?: string;
  project_id?: string;
  /** The universe the account lives in; googleapis.com when absent. */
  universe_domain?: string;
  /** pcrs: the PCR selection of a persistent PCR-bound key, e.g. "sha256:0,7". */
  tpm?: { tcti?: string; key?: string; auth_env?: string; pcrs?: string };
}

/** Where a descriptor came from: relative key paths are resolved against its directory. */
export interface DescriptorOrigin {
  /** The file, for messages and relative paths; absent for info built in code (cwd). */
  file?: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function invalid(message: string): TpmJwtError {
  return new TpmJwtError('ERR_KEY_FILE_INVALID', message);
}

/** A KEYREF from a descriptor: handles as they are, paths resolved and required to be regular files. */
async function descriptorKey(ref: string, origin: DescriptorOrigin): Promise<string> {
  const parsed = parseKeyRef(ref);
  if ('handle' in parsed) return ref;
  const base = origin.file === undefined ? process.cwd() : path.dirname(path.resolve(origin.file));
  const file = path.resolve(base, parsed.path);
  // Not a device or FIFO: reading one could block forever or have side effects.
  const isFile = await stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!isFile) throw invalid(`tpm.key ${parsed.path} is not a readable regular file (resolved to ${file})`);
  return file;
}

/**
 * The TpmSigner options a tpm_service_account descriptor describes, checked; without
 * the auth value when `withAuth` is false (reading the public key needs none). Throws
 * ERR_KEY_FILE_INVALID for a malformed descriptor, ERR_INVALID_ARGUMENT for a TCTI a
 * file may not name.
 */
export async function tpmSignerOptions(
  info: ServiceAccountInfo,
  origin: DescriptorOrigin = {},
  withAuth = true,
): Promise<TpmSignerOptions> {
  const tpm = info.tpm;
  if (tpm === null || typeof tpm !== 'object' || typeof tpm.key !== 'string') {
    throw invalid('tpm_service_account needs tpm.key (a KEYREF)');
  }
  const source = origin.file ?? 'tpm_service_account';
  let auth: string | undefined;
  if (tpm.auth_env !== undefined) {
    if (typeof tpm.auth_env !== 'string' || !ENV_NAME.test(tpm.auth_env)) {
      throw invalid('tpm.auth_env must name an environment variable (letters, digits, _)');
    }
    auth = withAuth ? process.env[tpm.auth_env] : '';
    if (auth === undefined) throw invalid(`tpm.auth_env names ${tpm.auth_env}, which is not set`);
  }
  return {
    key: await descriptorKey(tpm.key, origin),
    ...(tpm.pcrs !== undefined && { pcrs: parsePcrs(String(tpm.pcrs)) }),
    ...(tpm.tcti !== undefined && { tcti: checkTctiFromFile(tpm.tcti, source) }),
    ...(auth && { auth }),
    ...(info.private_key_id !== undefined && { keyId: info.private_key_id }),
  };
}

/** The signer for `info`, with private_key_id as its key id. Throws ERR_KEY_FILE_INVALID. */
export async function signerFromServiceAccountInfo(
  info: ServiceAccountInfo,
  origin: DescriptorOrigin = {},
): Promise<Signer> {
  if (info === null || typeof info !== 'object') throw invalid('service account info must be an object');
  if (typeof info.client_email !== 'string' || info.client_email === '') {
    throw invalid('service account info has no client_email');
  }
  if (info.type === 'tpm_service_account') return TpmSigner.open(await tpmSignerOptions(info, origin));
  if (info.type !== undefined && info.type !== 'service_account') {
    throw invalid(`unsupported credentials type ${info.type}`);
  }
  return SoftwareSigner.fromServiceAccountInfo(info as { private_key: string; private_key_id?: string });
}

/** Reads and parses a service-account JSON file. Throws ERR_KEY_FILE_INVALID. */
export async function readServiceAccountFile(file: string): Promise<ServiceAccountInfo> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as ServiceAccountInfo;
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${file} is not JSON`, { cause: err });
  }
}

/** The file's info and its signer (the caller closes it). */
export async function openServiceAccountFile(file: string): Promise<{ info: ServiceAccountInfo; signer: Signer }> {
  const info = await readServiceAccountFile(file);
  return { info, signer: await signerFromServiceAccountInfo(info, { file }) };
}
