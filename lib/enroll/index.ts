/**
 * tpm-jwt/enroll: from a TPM attestation to a device certificate. The server's handler
 * and CA need no TPM and load no native addon; the device's enroll() uses its TPM.
 */
export {
  certificateAuthority,
  type CertificateAuthority,
  type CertificateAuthorityOptions,
  type IssueRequest,
  type IssuedCertificate,
} from './certificate-authority.js';
export type { ReadRequest } from './certification-request.js';
export { inventoryPolicy } from './inventory.js';
export { googleCasAuthority, type CasClient, type GoogleCasOptions } from './google-cas.js';
export { enroll, renewEnrollment, type Enrollment, type EnrollOptions, type RenewOptions } from './device.js';
export { createEnrollmentHandler, type EnrollingDevice, type EnrollmentHandlerOptions } from './handler.js';
