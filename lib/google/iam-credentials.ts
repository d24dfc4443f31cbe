/**
 * IAM Credentials' service-account methods as URLs name them:
 * https://iamcredentials.UD/v1/projects/-/serviceAccounts/ACCOUNT:METHOD. The one place
 * that knows that shape: the credential configuration writes and checks it, the WIF
 * client reads the impersonated account from it, and the AuthClient recognises signBlob.
 */

/** The methods this package calls, answers or writes. */
type IamMethod = 'generateAccessToken' | 'generateIdToken' | 'signBlob';

/** /serviceAccounts/ACCOUNT:METHOD at the end of a path or URL, the account captured. */
const methodTail = (method: IamMethod) => `/serviceAccounts/([^/:]+):${method}$`;

/** The path of `method` for `account` in any project: /v1/projects/-/serviceAccounts/ACCOUNT:METHOD. */
export function iamMethodPath(account: string, method: IamMethod): string {
  return `/v1/projects/-/serviceAccounts/${account}:${method}`;
}

/** Matches a whole path of `method`, for any project and account: /v1/projects/P/serviceAccounts/A:METHOD. */
export function iamMethodPathPattern(method: IamMethod): RegExp {
  return new RegExp(`^/v1/projects/[^/]+${methodTail(method)}`);
}

/** The account (percent-decoded) of a path or URL that ends in /serviceAccounts/ACCOUNT:`method`; else undefined. */
export function iamAccount(pathOrUrl: string, method: IamMethod): string | undefined {
  const match = new RegExp(methodTail(method)).exec(pathOrUrl);
  return match ? decodeURIComponent(match[1]!) : undefined;
}

/** The URL of `to` for the account and project that `url`, a URL of `from`, names. */
export function otherIamMethod(url: string, from: IamMethod, to: IamMethod): string {
  return url.replace(new RegExp(`:${from}$`), `:${to}`);
}
