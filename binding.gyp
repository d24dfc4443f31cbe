{
  "targets": [
    {
      "target_name": "tpm_jwt",
      "sources": [
        "native/addon.cc",
        "native/context_wrap.cc",
        "native/convert.cc",
        "native/js_error.cc",
        "native/executor.cc",
        "native/tpm_call.cc",
        "native/tls_calls.cc",
        "native/tss/attestation_key.cc",
        "native/tss/auth.cc",
        "native/tss/certify.cc",
        "native/tss/context.cc",
        "native/tss/credential.cc",
        "native/tss/endorsement.cc",
        "native/tss/error_code.cc",
        "native/tss/import.cc",
        "native/tss/keys.cc",
        "native/tss/link.cc",
        "native/tss/loader.cc",
        "native/tss/marshal.cc",
        "native/tss/nv.cc",
        "native/tss/object_cache.cc",
        "native/tss/policy.cc",
        "native/tss/primary.cc",
        "native/tss/saved_context.cc",
        "native/tss/session.cc",
        "native/tss/sign.cc",
        "native/tss/status.cc",
        "native/tss/templates.cc",
        "native/tss/tls_key.cc",
        "native/tss/tls_session.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": [
        "NAPI_VERSION=<(napi_build_version)",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        # A terminating worker cannot take a thrown JS error; without this,
        # node-addon-api rethrows in C++ and std::terminate ends the process.
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "<!@(pkg-config --cflags tss2-esys tss2-sys tss2-tctildr tss2-mu tss2-rc libssl libcrypto)"
      ],
      "libraries": [
        "<!@(pkg-config --libs tss2-esys tss2-sys tss2-tctildr tss2-mu tss2-rc libssl libcrypto)"
      ]
    }
  ]
}
