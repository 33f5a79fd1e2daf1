/**
 * Every error codeblob throws on purpose, in one table: code → message template → base class.
 * Classes are branded with a global symbol so `instanceof` works across duplicate copies of the
 * package (a library and an app each bundling its own codeblob).
 */

const BRAND = Symbol.for('codeblob.error');

type Base = typeof Error | typeof TypeError | typeof RangeError;

const table = {
  ERR_CODEBLOB_BAD_FORMAT: [Error, 'Not a valid codeblob file: %s'],
  ERR_CODEBLOB_UNSUPPORTED_VERSION: [Error, 'Unsupported codeblob format version: %s'],
  ERR_CODEBLOB_INCOMPATIBLE: [Error, 'The blob was built for another runtime: %s'],
  ERR_CODEBLOB_CORRUPT_ENTRY: [Error, 'Blob entry failed its integrity check: %s'],
  ERR_CODEBLOB_CLOSED: [Error, 'The store is closed: %s'],
  ERR_CODEBLOB_INVALID_OPTION: [TypeError, '%s'],
  ERR_CODEBLOB_NATIVE_UNAVAILABLE: [Error, 'The codeblob native addon is not available: %s'],
  // Thrown by the addon itself (native-bindings/codeblob.h) and branded by native/binding.ts:
  // an argument error stays the TypeError or RangeError the addon threw.
  ERR_CODEBLOB_NATIVE_ARGUMENT: [TypeError, 'Bad argument to the codeblob addon: %s'],
  ERR_CODEBLOB_NAPI: [Error, 'A Node-API call failed in the codeblob addon: %s'],
  ERR_CODEBLOB_NO_EXTERNAL_BUFFERS: [Error, 'This Node build does not allow external ArrayBuffers: %s'],
  ERR_CODEBLOB_PACK_FAILED: [Error, 'Packing failed: %s'],
} as const satisfies Record<string, readonly [Base, string]>;

export type CodeblobErrorCode = keyof typeof table;

export interface CodeblobError extends Error {
  readonly code: CodeblobErrorCode;
}

function makeClass(code: CodeblobErrorCode, base: Base, template: string) {
  const Parent = base as typeof Error;
  const Class = class extends Parent {
    readonly code = code;
    constructor(detail: string, options?: { cause?: unknown }) {
      super(template.replace('%s', detail), options);
      this.name = `${base.name} [${code}]`;
    }
    static override [Symbol.hasInstance](value: unknown): boolean {
      return (
        typeof value === 'object' &&
        value !== null &&
        (value as Record<symbol, unknown>)[BRAND] === true &&
        (value as { code?: unknown }).code === code
      );
    }
  };
  Object.defineProperty(Class.prototype, BRAND, { value: true });
  Object.defineProperty(Class, 'name', { value: `CodeblobError(${code})` });
  return Class;
}

type ErrorClass = new (detail: string, options?: { cause?: unknown }) => CodeblobError;

/**
 * The error classes by code. Each class is made the first time it is asked for (a `new` or an
 * `instanceof`), not at startup: making all eleven cost every worker 19 KB of young generation
 * before it loaded anything.
 */
export const errors = {} as Record<CodeblobErrorCode, ErrorClass>;
for (const [code, [base, template]] of Object.entries(table)) {
  Object.defineProperty(errors, code, {
    enumerable: true,
    configurable: true,
    get(): ErrorClass {
      const Class = makeClass(code as CodeblobErrorCode, base, template) as unknown as ErrorClass;
      Object.defineProperty(errors, code, { value: Class, enumerable: true, writable: false, configurable: false });
      return Class;
    },
  });
}

/**
 * Brands an error that the native addon threw with one of the table's codes, keeping its class
 * (TypeError or RangeError), message and fields: `isCodeblobError` and `instanceof
 * errors.ERR_…` then hold for it as for any codeblob error.
 */
export function brandNativeError<T extends Error>(error: T & { code: CodeblobErrorCode }): T {
  Object.defineProperty(error, BRAND, { value: true });
  return error;
}

/** True for any error codeblob threw on purpose (any copy of the package). */
export function isCodeblobError(value: unknown): value is CodeblobError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[BRAND] === true &&
    typeof (value as { code?: unknown }).code === 'string'
  );
}

export function codeblobError(
  code: CodeblobErrorCode,
  detail: string,
  cause?: unknown,
): CodeblobError {
  return new errors[code](detail, cause === undefined ? undefined : { cause });
}
