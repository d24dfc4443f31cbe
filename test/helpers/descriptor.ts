/** Writes the tpm_service_account descriptors the suites read back. */
import { writeFileSync } from 'node:fs';

export interface DescriptorFields {
  client_email: string;
  private_key_id?: string;
  project_id?: string;
  tpm: { key: string; tcti?: string; auth_env?: string; pcrs?: string };
}

/** Writes `fields` as a tpm_service_account descriptor at `file`; returns `file`. */
export function writeDescriptor(file: string, fields: DescriptorFields): string {
  writeFileSync(file, JSON.stringify({ type: 'tpm_service_account', ...fields }));
  return file;
}
