// A custom loader on the store API: pack an app together with a WebAssembly module, then
// compile that module straight from the blob. With the mmap backend the bytes V8 compiles come
// from the shared, read-only mapping: no file is read and no copy is made on the JS side.
//
//   npm run build && node examples/wasm/run.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from 'codeblob';
import { pack } from 'codeblob/pack';

const here = (name) => fileURLToPath(new URL(name, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'codeblob-wasm-'));
try {
  const output = join(dir, 'app.blob');
  await pack({ entries: [here('app.cjs')], include: [here('add.wasm')], output });

  const store = open(output);
  try {
    const entry = store.entries().find((e) => e.kind === 'asset' && e.key.endsWith('.wasm'));
    if (entry === undefined) throw new Error(`no .wasm asset in ${output}`);
    // A zero-copy, read-only view, hash-checked on first use and valid until store.close().
    const view = store.sourceView(entry);
    const module = new WebAssembly.Module(view);
    const { add } = new WebAssembly.Instance(module).exports;
    console.log(`${entry.key}: ${entry.kind}, ${view.byteLength} bytes, backend ${store.backend}`);
    console.log(`add(2, 3) = ${add(2, 3)}`);
  } finally {
    store.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
