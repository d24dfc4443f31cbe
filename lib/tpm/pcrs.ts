/** PCR selections for key policies: which bank, which registers. */
import { TPM2_ALG } from '../algorithms.js';
import { invalidArgument, TpmJwtError } from '../errors.js';

export interface PcrSelection {
  bank: 'sha256';
  indexes: number[];
}

const TPM2_CC_POLICY_PCR = 0x0000017f;
const TPM2_CC_POLICY_AUTH_VALUE = 0x0000016b;

/** A checked copy of `pcrs` (sorted, unique indexes 0-23). Throws ERR_INVALID_ARGUMENT. */
export function checkPcrs(pcrs: unknown): PcrSelection {
  const value = pcrs as PcrSelection;
  if (value === null || typeof value !== 'object' || value.bank !== 'sha256' || !Array.isArray(value.indexes)) {
    throw invalidArgument("pcrs must be { bank: 'sha256', indexes: number[] }");
  }
  const indexes = [...new Set(value.indexes)].sort((a, b) => a - b);
  if (indexes.length === 0 || !indexes.every((i) => Number.isInteger(i) && i >= 0 && i <= 23)) {
    throw invalidArgument('pcrs.indexes must be one or more PCR numbers from 0 to 23');
  }
  return { bank: 'sha256', indexes };
}

/** `sha256:0,7` as the CLI writes it. */
export function parsePcrs(text: string): PcrSelection {
  const match = /^(sha256):([0-9]+(?:,[0-9]+)*)$/.exec(text.trim());
  if (!match) throw invalidArgument(`--pcrs ${text}: expected sha256:INDEX[,INDEX...]`);
  return checkPcrs({ bank: 'sha256', indexes: match[2]!.split(',').map(Number) });
}

export function formatPcrs(pcrs: PcrSelection): string {
  return `${pcrs.bank}:${pcrs.indexes.join(',')}`;
}

/** The policy as the addon takes it. */
export function nativePolicy(pcrs: PcrSelection, authValue: boolean) {
  return { bank: TPM2_ALG.SHA256, indexes: pcrs.indexes, authValue };
}

/**
 * The key file's policy entries (TPMPolicy: command code and the command's marshaled
 * parameters): PolicyPCR with an empty pcrDigest (the values when used) and the
 * selection, then PolicyAuthValue when the key also has an auth value.
 */
export function policyCommands(pcrs: PcrSelection, authValue: boolean): { code: number; policy: Buffer }[] {
  const select = Buffer.alloc(3);
  for (const index of pcrs.indexes) select[index >> 3]! |= 1 << (index & 7);
  const parameters = Buffer.concat([
    Buffer.from([0x00, 0x00]), // TPM2B_DIGEST pcrDigest, empty
    Buffer.from([0x00, 0x00, 0x00, 0x01, TPM2_ALG.SHA256 >> 8, TPM2_ALG.SHA256 & 0xff, 0x03]),
    select,
  ]);
  const commands = [{ code: TPM2_CC_POLICY_PCR, policy: parameters }];
  if (authValue) commands.push({ code: TPM2_CC_POLICY_AUTH_VALUE, policy: Buffer.alloc(0) });
  return commands;
}

/**
 * The reverse of policyCommands: exactly PolicyPCR, optionally followed by
 * PolicyAuthValue, the order the signing session applies them in. Anything else is
 * ERR_TPM_UNSUPPORTED; a selection that is not one is ERR_KEY_FILE_INVALID.
 */
export function fromPolicyCommands(commands: { code: number; policy: Uint8Array }[]): {
  pcrs: PcrSelection;
  authValue: boolean;
} | null {
  if (commands.length === 0) return null;
  const [first, second, ...rest] = commands;
  if (first!.code !== TPM2_CC_POLICY_PCR || rest.length > 0 || (second && second.code !== TPM2_CC_POLICY_AUTH_VALUE)) {
    return unsupported();
  }
  let pcrs: PcrSelection | undefined;
  let authValue = false;
  for (const { code, policy } of commands) {
    const bytes = Buffer.from(policy);
    if (code === TPM2_CC_POLICY_PCR && bytes.length >= 2) {
      const digestSize = bytes.readUInt16BE(0);
      const selection = bytes.subarray(2 + digestSize);
      if (
        selection.length !== 10 ||
        selection.readUInt32BE(0) !== 1 ||
        selection.readUInt16BE(4) !== TPM2_ALG.SHA256 ||
        selection[6] !== 3
      ) {
        return unsupported();
      }
      const indexes: number[] = [];
      for (let i = 0; i < 24; i++) if (selection[7 + (i >> 3)]! & (1 << (i & 7))) indexes.push(i);
      if (indexes.length === 0) throw new TpmJwtError('ERR_KEY_FILE_INVALID', 'the key file policy selects no PCR');
      pcrs = checkPcrs({ bank: 'sha256', indexes });
    } else if (code === TPM2_CC_POLICY_AUTH_VALUE) {
      authValue = true;
    } else {
      return unsupported();
    }
  }
  return pcrs ? { pcrs, authValue } : unsupported();
}

function unsupported(): never {
  throw new TpmJwtError(
    'ERR_TPM_UNSUPPORTED',
    'key policies other than PolicyPCR over sha256 and PolicyAuthValue are not supported',
  );
}
