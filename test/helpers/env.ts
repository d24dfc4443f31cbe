/** Environment variables set for a while in this process, then put back as they were. */

/**
 * Sets `env` on process.env until the returned function restores each variable (a
 * variable that was unset is unset again). Mocha runs one test at a time, so nothing
 * else sees the change.
 */
export function overlayEnv(env: Record<string, string>): () => void {
  const saved = Object.keys(env).map((name) => [name, process.env[name]] as const);
  Object.assign(process.env, env);
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}
