#!/usr/bin/env node
import * as module from 'node:module'

// Each command is a fresh process that compiles the CLI's code anew. Node 22.1+ can keep V8's
// compiled code in its on-disk compile cache: `$NODE_COMPILE_CACHE` when set, otherwise
// node-compile-cache/ in the system's temp directory (Node's own default). Where the cache
// cannot be used, Node says so in the returned status and the CLI runs as before; older Node
// versions have no such function. Enabled here, before the CLI's code is loaded, so that code
// is what gets cached; the package's library entry never enables it, since that would change
// the host application's process.
const { enableCompileCache } = module as { enableCompileCache?: () => unknown }
try {
  enableCompileCache?.()
} catch {
  // A cache that cannot be set up only costs the time it would have saved.
}
await import('./main.js')
