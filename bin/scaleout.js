#!/usr/bin/env node
// The `scaleout` command. The project runs on Node.js 24 LTS, which it installs
// from the npm registry as the `node` package (node_modules/node). Node 24
// strips TypeScript types itself, so the sources run as they are: no build
// step and no loader between a checkout and a running site.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const required = 24;
const major = Number(process.versions.node.split('.')[0]);

if (major < required) {
  // An older Node (the system's) started us: run again on the project's own Node.
  const projectNode = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(projectNode) || process.env.SCALEOUT_REEXEC === '1') {
    console.error(
      `scaleout needs Node.js ${required}+ (this is ${process.version}); run 'npm ci' in the project, then 'npx scaleout …' or 'npm start'`,
    );
    process.exit(1);
  }
  const child = spawn(projectNode, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, SCALEOUT_REEXEC: '1' },
  });
  // Whoever signals this process means the command: pass it on, and end as it ends.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
} else {
  // V8 keeps the compiled code of every module it loads (the app's and its
  // dependencies') on disk, so a warm start skips parsing and compiling them:
  // what a build step would buy, without one.
  const { enableCompileCache } = await import('node:module');
  enableCompileCache?.(fileURLToPath(new URL('../node_modules/.cache/scaleout-compile', import.meta.url)));
  await import('../src/cli/main.ts');
}
