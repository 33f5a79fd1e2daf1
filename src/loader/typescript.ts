/**
 * TypeScript as Node runs it (type stripping, Node 22.18+ / 24 / 26), shared by the packer's
 * tracer and the loader. Node compiles `stripTypeScriptTypes(ts, {mode: 'strip', sourceUrl})`
 * byte for byte, where the loader's `sourceUrl` (the `//# sourceURL=` tail it appends, which
 * names the script in stack traces) is the module's file URL, except on Node 22 for what its
 * CommonJS loader strips (require() of any TypeScript file), which is named by its path (issue
 * 14 research §1.2). The blob stores that text; the loader
 * hands it to Node as plain JavaScript, so Node's stripper (amaro, a WebAssembly swc: ~0.4 s of
 * CPU and ~30 MiB per process) is never loaded for a module the blob serves.
 */
import { pathToFileURL } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);

/** Node 22's CommonJS loader names what it strips by its path (`stripTypeScriptModuleTypes(content, filename)`). */
const requireByPath = major === 22;

/** Which of Node's loaders strips (and so names) the module: the CommonJS one (`require`, Module._compile) or the ES one (`import`). */
export type LoadedThrough = 'require' | 'import';

/** `.ts`, `.mts`, `.cts`: the extensions Node strips. */
export function isTypeScriptFile(filename: string): boolean {
  return filename.endsWith('.ts') || filename.endsWith('.mts') || filename.endsWith('.cts');
}

/** Node refuses to strip under node_modules (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING): never packed. */
export function underNodeModules(filename: string): boolean {
  return /[\\/]node_modules[\\/]/.test(filename);
}

/** The name Node's loader gives a module's stripped text (its `sourceUrl`). */
export function sourceUrlOf(filename: string, via: LoadedThrough): string {
  return via === 'require' && requireByPath ? filename : pathToFileURL(filename).href;
}

const tailOf = (name: string) => `\n\n//# sourceURL=${name}`;

/**
 * The stored text as Node would compile it when it loads the module `via` one loader: the same text when
 * the tail already names it that way; otherwise (Node 22 only: a module packed through require()
 * and loaded through import, or the reverse) the text with the other tail; undefined when the
 * text ends with neither (then Node must load it).
 */
export function asLoadedAs(text: string, filename: string, via: LoadedThrough): string | undefined {
  const want = tailOf(sourceUrlOf(filename, via));
  if (text.endsWith(want)) return text;
  if (!requireByPath) return undefined;
  const other = tailOf(sourceUrlOf(filename, via === 'require' ? 'import' : 'require'));
  return text.endsWith(other) ? text.slice(0, text.length - other.length) + want : undefined;
}

/**
 * Whether this process strips types as the packing one did: type stripping on (not off, not
 * `--experimental-transform-types`) and the very Node version (its stripper, and its tail).
 * Otherwise every TypeScript module goes to Node.
 */
export function strippingAsPacked(packedBy: string): boolean {
  return (process.features as { typescript?: unknown }).typescript === 'strip' && packedBy === process.version;
}
