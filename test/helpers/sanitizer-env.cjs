// Loaded first under `npm run test:asan`. The ASan runtime was preloaded into this
// node process, and node children that load the sanitized addon need it too; other
// programs the tests run (tpm2-tools, swtpm, openssl) must not get it (tpm2-tools
// hangs at exit with it). So LD_PRELOAD leaves the environment and is handed back
// only to node children.
const childProcess = require('node:child_process');
const { syncBuiltinESMExports } = require('node:module');

const preload = process.env.LD_PRELOAD;
delete process.env.LD_PRELOAD;

for (const name of ['spawn', 'spawnSync', 'execFile', 'execFileSync']) {
  const original = childProcess[name];
  childProcess[name] = function (file, ...rest) {
    if (file === process.execPath) {
      const argsGiven = Array.isArray(rest[0]);
      const options = { ...((argsGiven ? rest[1] : rest[0]) ?? {}) };
      options.env = { ...(options.env ?? process.env), LD_PRELOAD: preload };
      rest = argsGiven ? [rest[0], options, ...rest.slice(2)] : [options, ...rest.slice(1)];
    }
    return original.call(this, file, ...rest);
  };
}
syncBuiltinESMExports();
