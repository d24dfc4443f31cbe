/**
 * import.meta.url in the CLI's CommonJS bundle, where esbuild leaves import.meta empty:
 * scripts/bundle.ts injects this and defines import.meta.url as it. The bundle's modules
 * find the package (lib/package.ts) and their own sources from it.
 */
export const importMetaUrl: string = (require('node:url') as typeof import('node:url')).pathToFileURL(__filename).href;
