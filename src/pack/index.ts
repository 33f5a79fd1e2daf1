/** `codeblob/pack`: build a blob from an app's entry scripts. */
export { pack, type PackResult } from './pack.js';
export type { PackOptions, PackProgress } from './options.js';
