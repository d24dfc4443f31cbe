/**
 * TPM 2.0 command and response codes by name (TPM 2.0 Part 2, 6.5 and 6.6), for a chip
 * relay's configuration and its log: "Sign", not 0x15d.
 */

/** The commands a relay names; any other shows as its hex code. */
export const TPM_COMMANDS = Object.freeze({
  EvictControl: 0x120,
  HierarchyChangeAuth: 0x129,
  Clear: 0x126,
  CreatePrimary: 0x131,
  DictionaryAttackLockReset: 0x139,
  SequenceComplete: 0x13e,
  SelfTest: 0x143,
  Startup: 0x144,
  Shutdown: 0x145,
  ActivateCredential: 0x147,
  Certify: 0x148,
  NV_Read: 0x14e,
  ObjectChangeAuth: 0x150,
  PolicySecret: 0x151,
  Create: 0x153,
  ECDH_ZGen: 0x154,
  Import: 0x156,
  Load: 0x157,
  Quote: 0x158,
  RSA_Decrypt: 0x159,
  SequenceUpdate: 0x15c,
  Sign: 0x15d,
  ContextLoad: 0x161,
  ContextSave: 0x162,
  FlushContext: 0x165,
  LoadExternal: 0x167,
  MakeCredential: 0x168,
  NV_ReadPublic: 0x169,
  PolicyAuthValue: 0x16b,
  PolicyCommandCode: 0x16c,
  PolicyOR: 0x171,
  ReadPublic: 0x173,
  StartAuthSession: 0x176,
  VerifySignature: 0x177,
  GetCapability: 0x17a,
  GetRandom: 0x17b,
  GetTestResult: 0x17c,
  Hash: 0x17d,
  PCR_Read: 0x17e,
  PolicyPCR: 0x17f,
  PolicyRestart: 0x180,
  ReadClock: 0x181,
  PCR_Extend: 0x182,
  HashSequenceStart: 0x186,
  PolicyGetDigest: 0x189,
  TestParms: 0x18a,
  CreateLoaded: 0x191,
} as const);

export type TpmCommandName = keyof typeof TPM_COMMANDS;

/** The TPM's "not now" and resource answers a test most often injects, by name. */
export const TPM_RESPONSES = Object.freeze({
  SUCCESS: 0x000,
  OBJECT_MEMORY: 0x902,
  SESSION_MEMORY: 0x903,
  MEMORY: 0x904,
  YIELDED: 0x908,
  CANCELED: 0x909,
  TESTING: 0x90a,
  NV_RATE: 0x920,
  LOCKOUT: 0x921,
  RETRY: 0x922,
  NV_UNAVAILABLE: 0x923,
} as const);

export type TpmResponseName = keyof typeof TPM_RESPONSES;

const NAMES = new Map<number, string>(Object.entries(TPM_COMMANDS).map(([name, code]) => [code, name]));

/** A command code's name, or its hex code when it has none here. */
export function commandName(code: number): string {
  return NAMES.get(code) ?? `0x${code.toString(16).padStart(8, '0')}`;
}

/** A command by name or code, as its code; throws TypeError for an unknown name. */
export function commandCode(command: TpmCommandName | number): number {
  if (typeof command === 'number') return command;
  const code = TPM_COMMANDS[command];
  if (code === undefined) throw new TypeError(`unknown TPM command ${JSON.stringify(command)}`);
  return code;
}

/** A response code by name or number. */
export function responseCode(rc: TpmResponseName | number): number {
  if (typeof rc === 'number') return rc;
  const code = TPM_RESPONSES[rc];
  if (code === undefined) throw new TypeError(`unknown TPM response code ${JSON.stringify(rc)}`);
  return code;
}
