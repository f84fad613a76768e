#!/usr/bin/env node
/**
 * The `imi-server` executable (`bin` of the package): the command itself
 * lives in `ops/cli.ts`; this file stays at the top so `dist/cli.js` keeps
 * its path for `npx imi-server` and every script that runs it.
 *
 * @module
 */
import './ops/cli.js';
