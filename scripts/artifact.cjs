#!/usr/bin/env node
// Prints the committed form of a forge artifact: only what the Rust bindings
// need (ABI, creation and runtime bytecode), with stable formatting. The Rust
// test `bindings_are_fresh` applies the same reduction when it compares.
'use strict';
const fs = require('fs');
const artifact = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const reduced = {
  abi: artifact.abi,
  bytecode: { object: artifact.bytecode.object },
  deployedBytecode: { object: artifact.deployedBytecode.object },
};
process.stdout.write(JSON.stringify(reduced, null, 2) + '\n');
