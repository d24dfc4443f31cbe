/**
 * Which TPM to talk to: the `tcti` option, then TPM2TOOLS_TCTI, then TSS2_TCTI (the
 * variables tpm2-tools and tpm2-tss read), else '' for tpm2-tss's own search
 * (tabrmd, /dev/tpmrm0, /dev/tpm0, swtpm, mssim). Any tctildr string is passed through.
 */
export function resolveTcti(option?: string, env: NodeJS.ProcessEnv = process.env): string {
  for (const value of [option, env['TPM2TOOLS_TCTI'], env['TSS2_TCTI']]) {
    if (value !== undefined && value.trim() !== '') return value.trim();
  }
  return '';
}
