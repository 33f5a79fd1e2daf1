import { expect } from 'vitest';
import { isCodeblobError, type CodeblobErrorCode } from '../../src/errors.js';

/** `fn` throws an error with this `code` (a branded codeblob error for ERR_CODEBLOB_*), and its message matches `text`. */
export function expectCode(fn: () => unknown, code: CodeblobErrorCode | string, text?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a throw').toBeDefined();
  expect((caught as { code?: string }).code).toBe(code);
  if (code.startsWith('ERR_CODEBLOB_')) expect(isCodeblobError(caught)).toBe(true);
  if (text) expect((caught as Error).message).toMatch(text);
}
