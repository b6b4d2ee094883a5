#!/usr/bin/env node
'use strict';
// The command is compiled from TypeScript by `npm ci` (the `prepare` script).
const path = require('path');
const fs = require('fs');
const main = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!fs.existsSync(main)) {
  process.stderr.write('hvspec: not built yet; run `npm ci` (or `npm run build`) in ' + path.join(__dirname, '..') + '\n');
  process.exit(2);
}
const cli = require(main);
cli.installProcessHandlers();
cli.main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
