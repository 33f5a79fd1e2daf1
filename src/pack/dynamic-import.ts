/**
 * Could a CommonJS module, run from a code cache, reach `import()`?
 *
 * Node 20 (V8 11.3) loses a script's host-defined options when the script is compiled from a
 * code cache, so `import()` inside it rejects with ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING (fixed
 * from Node 22). Code the module compiles at run time inherits the options of the script that
 * compiled it (V8 walks `eval_from_shared` up to it), so `new Function('p', 'return import(p)')`
 * (real-require, used by pino's thread-stream) breaks the same way, whatever module the text
 * came from. On Node 20 such a module is stored without a cache: it still compiles from the
 * blob's external source, only without the speed-up.
 *
 * A module may reach `import()` when it has an `import()` expression, or can compile code from
 * a string: it uses `eval`, or uses `Function` or a `constructor` property (of anything but
 * `this`: the AsyncFunction and GeneratorFunction constructors are reached only that way) in
 * any way but the harmless ones: compared or tested (`===`, `instanceof`, `typeof`, `!`, `x &&`), or read through
 * (`Function.prototype.toString`, `x.constructor.name`), or called on literal text alone that
 * has no `import` in it (`Function('return this')`). Calling on other text, passing or storing
 * either counts, as does `globalThis.Function` (or `global['eval']`). A regex finds candidates; a real parse
 * (acorn) rules out the many that only mention these words in strings and comments. Anything
 * acorn cannot parse counts as reaching it.
 */
import { parse } from 'acorn';
import { wrapCjs } from '../loader/cjs-compile.js';

const CANDIDATE = /\bimport\s*(?:\(|\/[*/])|\beval\b|\bFunction\b|constructor/;

interface Node {
  type: string;
  [key: string]: unknown;
}

const isNode = (n: unknown): n is Node => n !== null && typeof n === 'object' && typeof (n as Node).type === 'string';

const COMPARISONS = new Set(['===', '!==', '==', '!=', 'instanceof']);
const GLOBAL_OBJECTS = new Set(['globalThis', 'global', 'window', 'self']);

const isGlobalObject = (n: Node) => n.type === 'Identifier' && GLOBAL_OBJECTS.has(n.name as string);

function propertyName(member: Node): string | undefined {
  const p = member.property as Node;
  if (member.computed) return p.type === 'Literal' && typeof p.value === 'string' ? p.value : undefined;
  return p.type === 'Identifier' ? (p.name as string) : undefined;
}

/** Calling one of these on the Function constructor (or storing it) invokes it, or hands it over. */
const INVOKING = new Set(['call', 'apply', 'bind']);

type Parents = WeakMap<Node, Node>;

/** Is this argument list literal text alone, with no `import` in it? */
function literalCode(args: readonly Node[]): boolean {
  return args.every((a) => {
    const text = a.type === 'Literal' ? a.value : a.type === 'TemplateLiteral' && (a.expressions as Node[]).length === 0 ? ((a.quasis as Node[])[0]!.value as { cooked?: unknown }).cooked : undefined;
    return typeof text === 'string' && !text.includes('import');
  });
}

/**
 * Is `node` (the Function constructor, or what may be one) used harmlessly where it stands:
 * compared or tested, read through (`.prototype`, `.name`, `.isBuffer`, `Function.call` as a
 * value), or called on literal text that has no `import` in it? Anything reading `.constructor`
 * further on is judged where it stands.
 */
function harmless(node: Node, parents: Parents): boolean {
  const parent = parents.get(node);
  if (!parent) return false;
  switch (parent.type) {
    case 'CallExpression':
    case 'NewExpression':
      // Function('return this')(): the code it compiles is right there.
      return parent.callee === node && literalCode(parent.arguments as Node[]);
    case 'BinaryExpression':
      return COMPARISONS.has(parent.operator as string);
    case 'UnaryExpression':
      return parent.operator === 'typeof' || parent.operator === '!';
    case 'IfStatement':
    case 'ConditionalExpression':
    case 'WhileStatement':
    case 'DoWhileStatement':
      return parent.test === node;
    case 'LogicalExpression':
      // `x && …` yields x only when it is falsy; `… && x` yields x where the whole stands.
      return parent.operator === '&&' && (parent.left === node || harmless(parent, parents));
    case 'MemberExpression': {
      if (parent.object !== node) return false;
      const name = propertyName(parent);
      if (name === undefined || name === 'constructor') return false;
      if (!INVOKING.has(name)) return true;
      // Function.call(null, code) runs the constructor; Function.call.bind(f) only reads a method.
      const grand = parents.get(parent);
      return !((grand?.type === 'CallExpression' || grand?.type === 'NewExpression') && grand.callee === parent) &&
        !(grand?.type === 'VariableDeclarator' || grand?.type === 'AssignmentExpression');
    }
    default:
      return false;
  }
}

/** Is this identifier a name in a declaration or a property key, not a reference? */
function isKey(n: Node, parent: Node | undefined): boolean {
  if (!parent) return false;
  if ((parent.type === 'Property' || parent.type === 'MethodDefinition' || parent.type === 'PropertyDefinition') && parent.key === n) return !parent.computed;
  return parent.type === 'MemberExpression' && parent.property === n && !parent.computed;
}

/** Does this node, where it stands, let the module run import()? */
function reaches(n: Node, parents: Parents): boolean {
  switch (n.type) {
    case 'ImportExpression':
      return true;
    case 'Identifier':
      if (n.name !== 'Function' && n.name !== 'eval') return false;
      return !isKey(n, parents.get(n)) && !harmless(n, parents);
    case 'MemberExpression': {
      const name = propertyName(n);
      // globalThis.Function, global['eval'] (an enum member named Function is no concern).
      if (name === 'Function' || name === 'eval') return isGlobalObject(n.object as Node) && !harmless(n, parents);
      if (name !== 'constructor' || (n.object as Node).type === 'ThisExpression') return false;
      return !harmless(n, parents);
    }
    default:
      return false;
  }
}

function anyReaches(root: Node): boolean {
  const parents: Parents = new WeakMap();
  const stack: [unknown, Node | undefined][] = [[root, undefined]];
  while (stack.length > 0) {
    const [n, parent] = stack.pop()!;
    if (Array.isArray(n)) {
      for (const x of n) stack.push([x, parent]);
    } else if (isNode(n)) {
      if (parent) parents.set(n, parent);
      if (reaches(n, parents)) return true;
      for (const key in n) {
        if (key !== 'type' && key !== 'loc' && key !== 'start' && key !== 'end' && key !== 'raw') stack.push([n[key], n]);
      }
    }
  }
  return false;
}

export function mayReachImport(text: string): boolean {
  if (!CANDIDATE.test(text)) return false;
  try {
    return anyReaches(parse(wrapCjs(text), { ecmaVersion: 'latest', sourceType: 'script' }) as unknown as Node);
  } catch {
    return true;
  }
}
