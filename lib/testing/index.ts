/**
 * tpm-jwt/testing: software TPMs for tests (mocha, jest, vitest, node:test) that behave
 * like chips. Production code never loads this entry point.
 *
 *   const tpm = await startSoftwareTpm({ manufacture: true, key: { alg: 'ES256' } });
 *   const chip = await startChipRelay({ tcti: tpm.tcti, profile: 'discrete-spi',
 *                                       faults: [{ command: 'Sign', nth: 1, rc: 'RETRY' }] });
 *   // ... point the code under test at chip.tcti; then chip.count('Sign'), chip.log
 *   await chip.close(); await tpm.stop();
 */
export {
  manufacture,
  manufacturerCa,
  startSoftwareTpm,
  SWTPM_INSTALL_HINT,
  type ManufacturerCa,
  type ProvisionedKey,
  type SoftwareTpm,
  type SoftwareTpmOptions,
} from './software-tpm.js';
export { startChipRelay, type ChipRelay, type ChipRelayOptions, type CommandRecord, type Fault } from './chip-relay.js';
export { CHIP_PROFILES, type ChipProfileName, type LatencyTable } from './profiles.js';
export { commandName, TPM_COMMANDS, TPM_RESPONSES, type TpmCommandName, type TpmResponseName } from './commands.js';
export { freePortPair } from './ports.js';
