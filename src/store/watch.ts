/**
 * Notices that a mapped blob was written in place (its size or mtime changed since it was
 * opened): its pages may then hold other bytes, or none (a truncated mapping is SIGBUS on
 * access). codeblob never does this; an operator who does must not let workers read on. One
 * fstat of a descriptor of the very inode that was mapped, checked before every module served.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import type { NativeBinding } from '../native/binding.js';
import type { FileFacts } from './backend.js';

export class InPlaceWriteWatch {
  readonly #fd: number;
  readonly #file: FileFacts;
  readonly #binding: NativeBinding | undefined;
  #facts: Float64Array | undefined;

  private constructor(fd: number, file: FileFacts, binding: NativeBinding | undefined) {
    this.#fd = fd;
    this.#file = file;
    this.#binding = binding;
  }

  /** A watch on `path` if it is still the mapped inode (else undefined: it was just replaced). */
  static open(path: string, file: FileFacts, binding: NativeBinding | undefined): InPlaceWriteWatch | undefined {
    let fd: number | undefined;
    try {
      fd = openSync(path, 'r');
      const st = fstatSync(fd);
      if (st.dev === file.dev && st.ino === file.ino) return new InPlaceWriteWatch(fd, file, binding);
    } catch {
      // Gone already: nothing to watch.
    }
    if (fd !== undefined) closeSync(fd);
    return undefined;
  }

  /** Was the file written since it was opened? A failed fstat counts as written. */
  changed(): boolean {
    if (this.#binding) {
      // With the addon: no Stats object for a check made before every module.
      const facts = (this.#facts ??= new Float64Array(2));
      if (!this.#binding.fstatInto(this.#fd, facts)) return true;
      return facts[0] !== this.#file.size || facts[1] !== this.#file.mtimeMs;
    }
    const st = fstatSync(this.#fd);
    return st.size !== this.#file.size || st.mtimeMs !== this.#file.mtimeMs;
  }

  close(): void {
    closeSync(this.#fd);
  }
}
