/**
 * The cached-token path in process, against google-auth-library's own JWTAccess cache,
 * and how many TPM signings a burst of concurrent requests for one cold audience costs.
 */
import { generateKeyPairSync } from 'node:crypto';

import { JWTAccess } from 'google-auth-library';

import { TpmAuthClient } from '../lib/google/index.js';
import { jwt, TpmSigner, type Signer } from '../lib/index.js';
import { absolute, asyncOpsRate, compared, opsRate, type Bench, type Row } from './common.js';

const EMAIL = 'bench@p.iam.gserviceaccount.com';
const URL = 'https://pubsub.googleapis.com/v1/projects/p/topics';

export async function tokenFigures(bench: Bench): Promise<Row[]> {
  const { keys, n, progress } = bench;
  progress('cached token path vs google-auth-library JWTAccess');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const access = new JWTAccess(EMAIL, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'kid');
  const theirs = opsRate(n(100000), () => access.getRequestHeaders(URL));
  const signer = TpmSigner.fromKey(keys.encrypted.ES256);
  const onDemand = new jwt.OnDemandCredentials(signer, { issuer: EMAIL, subject: EMAIL });
  const headers: Record<string, string> = {};
  const ours = await asyncOpsRate(n(100000), () => onDemand.beforeRequest(null, 'GET', URL, headers));
  const client = new TpmAuthClient({ signer, email: EMAIL });
  const clientRate = await asyncOpsRate(n(100000), () => client.getRequestHeaders(URL));
  const rows = [
    compared('cached token: OnDemandCredentials.beforeRequest vs JWTAccess', 'ops/s', ours, theirs, { min: 1 }),
    compared('cached token: TpmAuthClient.getRequestHeaders vs JWTAccess', 'ops/s', clientRate, theirs, { min: 1 }),
  ];

  progress('single flight: 1000 concurrent requests for a cold audience');
  let signings = 0;
  const counting: Signer = { algorithm: 'ES256', sign: (m) => (signings++, signer.sign(m)) };
  const cold = new jwt.OnDemandCredentials(counting, { issuer: EMAIL, subject: EMAIL });
  await Promise.all(
    Array.from({ length: 1000 }, () => cold.beforeRequest(null, 'GET', 'https://storage.googleapis.com/b', {})),
  );
  rows.push(
    absolute('TPM signings for 1000 concurrent cold requests', 'signings', signings, {
      text: '= 1',
      met: signings === 1,
    }),
  );
  return rows;
}
