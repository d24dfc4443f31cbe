#include "public_info.h"

namespace tss {

PublicInfo DescribePublic(const TPMT_PUBLIC& pub) {
  PublicInfo info;
  info.type = pub.type;
  info.name_alg = pub.nameAlg;
  info.attributes = pub.objectAttributes;
  info.auth_policy.assign(pub.authPolicy.buffer, pub.authPolicy.buffer + pub.authPolicy.size);
  if (pub.type == TPM2_ALG_RSA) {
    const TPM2B_PUBLIC_KEY_RSA& n = pub.unique.rsa;
    info.scheme = pub.parameters.rsaDetail.scheme.scheme;
    info.scheme_hash = pub.parameters.rsaDetail.scheme.details.anySig.hashAlg;
    info.rsa_bits = pub.parameters.rsaDetail.keyBits;
    info.rsa_exponent = pub.parameters.rsaDetail.exponent;
    info.rsa_modulus.assign(n.buffer, n.buffer + n.size);
  } else if (pub.type == TPM2_ALG_ECC) {
    const TPMS_ECC_POINT& point = pub.unique.ecc;
    info.scheme = pub.parameters.eccDetail.scheme.scheme;
    info.scheme_hash = pub.parameters.eccDetail.scheme.details.anySig.hashAlg;
    info.ecc_curve = pub.parameters.eccDetail.curveID;
    info.ecc_x.assign(point.x.buffer, point.x.buffer + point.x.size);
    info.ecc_y.assign(point.y.buffer, point.y.buffer + point.y.size);
  }
  return info;
}

}  // namespace tss
