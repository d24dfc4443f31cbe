import type { SrkState } from '../../native.js';
import { UsageError } from '../args.js';
import { json, withTpm, type Command } from '../command.js';

const SAYS: Record<SrkState, string> = {
  'storage-primary':
    '0x81000001 holds the storage primary: opening the TPM and loading key files create no primary key',
  absent:
    '0x81000001 is empty: each cold start creates the storage primary (100 ms or more on a chip); ' +
    '`tpm-jwt srk --persist` keeps it there',
  other:
    '0x81000001 holds another object, not the storage primary: tpm-jwt salts its session with it ' +
    'where it can, and creates the storage primary for key files',
};

export const srk: Command = {
  usage: `tpm-jwt srk [--persist [--force]] [--json]

Shows what the SRK handle 0x81000001 holds. --persist makes the storage primary
persistent there (the TCG provisioning guidance's SRK), once per TPM, so that no cold
start creates it again; another object there is refused unless --force.

  tpm-jwt srk --persist`,
  options: { persist: { type: 'boolean' }, force: { type: 'boolean' }, json: { type: 'boolean' } },
  async run(values, io) {
    const persist = values['persist'] === true;
    if (values['force'] === true && !persist) throw new UsageError('--force replaces an object only with --persist');
    const state = await withTpm(values, (tpm) => tpm.srk({ persist, force: values['force'] === true }));
    if (values['json']) io.out(json({ handle: '0x81000001', state }));
    else io.out(`${SAYS[state]}\n`);
  },
};
