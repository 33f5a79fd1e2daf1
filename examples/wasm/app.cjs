// The "app" being packed: it does nothing heavy. The packer runs it once to trace the modules it
// loads; add.wasm is not loaded by it, so run.mjs packs that file with `include`, as an asset.
module.exports = { name: 'wasm-example' };
