#!/usr/bin/env node
// The `scaleout` command. It runs the TypeScript sources directly through tsx,
// so there is no build step between a checkout and a running site.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
