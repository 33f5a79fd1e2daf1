// tsc does not keep the executable bit; npm links bins either way, but a direct run needs it.
import { chmodSync } from 'node:fs';
chmodSync(new URL('../dist/cli/main.js', import.meta.url), 0o755);
