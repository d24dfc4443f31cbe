import { algorithmInfo } from '../../algorithms.js';
import { publicJwk } from '../../jwk.js';
import { formatHandle } from '../../tpm/handle.js';
import { required } from '../args.js';
import { loadKeyRef } from '../../tpm/key-ref.js';
import { json, withTpm, type Command } from '../command.js';

export const inspect: Command = {
  usage: `tpm-jwt inspect --key KEYREF [--json]

  tpm-jwt inspect --key 0x81000010`,
  options: { key: { type: 'string' } },
  async run(values, io) {
    const key = await withTpm(values, (tpm) => loadKeyRef(tpm, required(values, 'key')));
    const details = key.publicKey.asymmetricKeyDetails ?? {};
    const info = algorithmInfo(key.algorithm)!;
    const report = {
      handle: key.handle === undefined ? null : formatHandle(key.handle),
      algorithm: key.algorithm,
      algorithms: key.algorithms,
      keyType: info.keyType,
      ...(details.modulusLength !== undefined && { bits: details.modulusLength }),
      ...(info.curve && { curve: info.curve.jwk }),
      attributes: key.attributes,
      kid: publicJwk(key.publicKey, key.algorithm).kid,
      publicKeyPem: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
    if (!key.attributes.fixedTPM || !key.attributes.fixedParent) {
      io.err(
        'warning: this key is not fixedTPM|fixedParent: it was imported or may be duplicated, ' +
          'so a copy of it can exist outside this TPM\n',
      );
    }
    if (values['json']) {
      io.out(json(report));
      return;
    }
    const set = Object.entries(report.attributes)
      .filter(([, on]) => on)
      .map(([name]) => name);
    io.out(
      [
        `handle:     ${report.handle ?? '(not persistent)'}`,
        `algorithm:  ${report.algorithms.join(', ')}`,
        `key:        ${report.keyType} ${report.bits ?? report.curve}`,
        `attributes: ${set.join('|')}`,
        `kid:        ${report.kid}`,
        report.publicKeyPem,
      ].join('\n'),
    );
  },
};
