import { formatHandle, parsePersistentHandle } from '../../tpm/handle.js';
import { flagValue, required } from '../args.js';
import { withTpm, type Command } from '../command.js';

export const evict: Command = {
  usage: `tpm-jwt evict --handle HANDLE

  tpm-jwt evict --handle 0x81000010`,
  options: { handle: { type: 'string' } },
  async run(values, io) {
    const handle = flagValue('handle', required(values, 'handle'), parsePersistentHandle);
    await withTpm(values, (tpm) => tpm.evict(handle));
    io.err(`evicted ${formatHandle(handle)}\n`);
  },
};
