import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

// This folder is the app's root, also when it is installed inside another project (the tests
// build it under the codeblob repository, whose own lockfile Next would otherwise take for the
// workspace root).
const root = dirname(fileURLToPath(import.meta.url));

/** @type {import('next').NextConfig} */
const nextConfig = {
  // A self-contained server in .next/standalone (server.js + the traced node_modules): what
  // gets deployed, and what codeblob packs (`--root .next/standalone`).
  output: 'standalone',
  outputFileTracingRoot: root,
  turbopack: { root },
  // The same build ID on every build of the same sources, so responses compare across builds.
  generateBuildId: async () => 'codeblob-corpus',
  poweredByHeader: false,
  images: { unoptimized: true },
};

export default nextConfig;
