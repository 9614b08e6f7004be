#!/usr/bin/env node
// A `solc` command-line front for forge, backed by solcjs from npm.
//
// forge cannot download native compilers on these machines, so foundry.toml
// points `solc` at tools/bin/solc, which runs this file. forge only needs two
// things from a compiler binary: `--version` (parsed from the second line) and
// `--standard-json` (input on stdin, output on stdout).
'use strict';

const path = require('path');
const toolsModules = path.join(__dirname, '..', 'tools', 'node_modules');
const solc = require(path.join(toolsModules, 'solc'));

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write('solc, the solidity compiler commandline interface\n');
  process.stdout.write(`Version: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc wrapper: only --version and --standard-json are supported\n');
  process.exit(2);
}

// forge passes --allow-paths / --base-path / --include-path; standard JSON
// input already carries every source, so imports are resolved from disk only
// as a fallback, relative to the base path.
const basePathIdx = args.indexOf('--base-path');
const basePath = basePathIdx >= 0 ? args[basePathIdx + 1] : process.cwd();
const fs = require('fs');
function findImports(p) {
  for (const candidate of [p, path.join(basePath, p)]) {
    try {
      return { contents: fs.readFileSync(candidate, 'utf8') };
    } catch (_) {
      // try the next candidate
    }
  }
  return { error: `file not found: ${p}` };
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  process.stdout.write(solc.compile(input, { import: findImports }));
});
