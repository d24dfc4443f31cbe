import { startAwsMetadataServer } from '../../aws/metadata-server.js';
import { listenAddress } from '../args.js';
import { ROLES_ANYWHERE_OPTIONS, ROLES_ANYWHERE_USAGE, rolesAnywhereOptions } from '../aws-flags.js';
import { untilSignalled, type Command } from '../command.js';
import { withKeySigner } from '../signer-source.js';

export const serveAwsMetadata: Command = {
  usage: `tpm-jwt serve-aws-metadata ${ROLES_ANYWHERE_USAGE}
        [--listen 127.0.0.1:9911]

An IMDSv2-compatible endpoint on loopback that answers Roles Anywhere credentials signed in
the TPM (kept until they near expiry: one signature per session), for AWS SDKs that read
instance metadata only. Prints the export line for them; runs until SIGTERM or SIGINT.

  tpm-jwt serve-aws-metadata --key 0x81008001 --certificate cert.pem --trust-anchor-arn ... &
  export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911`,
  options: { ...ROLES_ANYWHERE_OPTIONS, listen: { type: 'string' } },
  async run(values, io) {
    const options = await rolesAnywhereOptions(values, io.env);
    const address = listenAddress(values, '127.0.0.1:9911');
    await withKeySigner(values, io, async (signer) => {
      const server = await startAwsMetadataServer(signer, options, address);
      io.out(`export AWS_EC2_METADATA_SERVICE_ENDPOINT=${server.url}\n`);
      await untilSignalled();
      await server.close();
    });
  },
};
