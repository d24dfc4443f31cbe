/**
 * The signer a service-account JSON describes: a standard `service_account` key file
 * signs in software; a `tpm_service_account` descriptor names a key in a TPM.
 */
import { readFile } from 'node:fs/promises';

import { TpmJwtError } from '../errors.js';
import { parsePcrs } from '../tpm/pcrs.js';
import type { Signer } from './signer.js';
import { SoftwareSigner } from './software-signer.js';
import { TpmSigner } from './tpm-signer.js';

export interface ServiceAccountInfo {
  type?: string;
  client_email?: string;
  private_key_id?: string;
  private_key?: string;
  project_id?: string;
  /** pcrs: the PCR selection of a persistent PCR-bound key, e.g. "sha256:0,7". */
  tpm?: { tcti?: string; key?: string; auth_env?: string; pcrs?: string };
}

function invalid(message: string): TpmJwtError {
  return new TpmJwtError('ERR_KEY_FILE_INVALID', message);
}

/** The signer for `info`, with private_key_id as its key id. Throws ERR_KEY_FILE_INVALID. */
export async function signerFromServiceAccountInfo(info: ServiceAccountInfo): Promise<Signer> {
  if (info === null || typeof info !== 'object') throw invalid('service account info must be an object');
  if (typeof info.client_email !== 'string' || info.client_email === '') {
    throw invalid('service account info has no client_email');
  }
  if (info.type === 'tpm_service_account') {
    const tpm = info.tpm;
    if (typeof tpm?.key !== 'string') throw invalid('tpm_service_account needs tpm.key (a KEYREF)');
    let auth: string | undefined;
    if (tpm.auth_env !== undefined) {
      auth = process.env[tpm.auth_env];
      if (auth === undefined) throw invalid(`tpm.auth_env names ${tpm.auth_env}, which is not set`);
    }
    return TpmSigner.open({
      key: tpm.key,
      ...(tpm.pcrs !== undefined && { pcrs: parsePcrs(String(tpm.pcrs)) }),
      ...(tpm.tcti !== undefined && { tcti: tpm.tcti }),
      ...(auth !== undefined && { auth }),
      ...(info.private_key_id !== undefined && { keyId: info.private_key_id }),
    });
  }
  if (info.type !== undefined && info.type !== 'service_account') {
    throw invalid(`unsupported credentials type ${info.type}`);
  }
  return SoftwareSigner.fromServiceAccountInfo(info as { private_key: string; private_key_id?: string });
}

/** Reads and parses a service-account JSON file. Throws ERR_KEY_FILE_INVALID. */
export async function readServiceAccountFile(path: string): Promise<ServiceAccountInfo> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as ServiceAccountInfo;
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `${path} is not JSON`, { cause: err });
  }
}
