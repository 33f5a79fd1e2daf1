// Writes add.wasm: the smallest WebAssembly module that exports add(i32, i32) -> i32.
// The bytes are written out by hand so the example needs no toolchain; `node make-add-wasm.mjs
// [out]` regenerates the committed file (default: add.wasm beside this script).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const section = (id, ...body) => [id, body.length, ...body];

export const bytes = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, // magic "\0asm"
  0x01, 0x00, 0x00, 0x00, // binary format version 1
  // type section: one function type, (i32, i32) -> (i32)
  ...section(0x01, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f),
  // function section: one function, of type 0
  ...section(0x03, 0x01, 0x00),
  // export section: one export, "add", a function, index 0
  ...section(0x07, 0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00),
  // code section: one body, no locals: local.get 0, local.get 1, i32.add, end
  ...section(0x0a, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b),
]);

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? fileURLToPath(new URL('add.wasm', import.meta.url));
  writeFileSync(out, bytes);
  console.log(`wrote ${out} (${bytes.length} bytes)`);
}
