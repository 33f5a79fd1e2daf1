/**
 * Does a CommonJS module contain an `import()` expression?
 *
 * Node 20 (V8 11.3) loses a script's host-defined options when the script is compiled from a
 * code cache, so `import()` inside it rejects with ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING (fixed
 * from Node 22). On Node 20 such a module is stored without a cache: it still compiles from the
 * blob's external source, only without the speed-up. A regex finds candidates; a real parse
 * (acorn) rules out the many that only mention "import(" in strings and comments (typescript.js,
 * for one). Anything acorn cannot parse counts as importing.
 */
import { parse } from 'acorn';
import { wrapCjs } from '../loader/cjs-compile.js';

const CANDIDATE = /\bimport\s*(?:\(|\/[*/])/;

function containsImportExpression(node: unknown): boolean {
  const stack: unknown[] = [node];
  while (stack.length > 0) {
    const n = stack.pop();
    if (Array.isArray(n)) {
      for (const x of n) stack.push(x);
    } else if (n !== null && typeof n === 'object') {
      if ((n as { type?: unknown }).type === 'ImportExpression') return true;
      for (const key in n) {
        if (key !== 'loc' && key !== 'start' && key !== 'end') stack.push((n as Record<string, unknown>)[key]);
      }
    }
  }
  return false;
}

export function mayCallImport(text: string): boolean {
  if (!CANDIDATE.test(text)) return false;
  try {
    return containsImportExpression(parse(wrapCjs(text), { ecmaVersion: 'latest', sourceType: 'script' }));
  } catch {
    return true;
  }
}
