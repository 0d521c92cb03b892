// Gives the separately loaded module (crates/fota-web-extras, which Trunk builds as a
// "worker" under fixed names) and the encoder's worker script names with a hash of their
// content, as Trunk names the app's own files, and writes the new names into index.html
// (web/boot.js's data attributes), and the size of the app's WebAssembly. The service worker keeps hashed files as they are
// and drops those a new build no longer names. Run by Trunk after each build
// (Trunk.toml, hooks), before web/precompress.mjs.
//
//   node web/extras.mjs DIR
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node web/extras.mjs DIR');
  process.exit(2);
}
// [name as built, the part of the name the hash goes before]
const FILES = [
  ['fota-web-extras.js', '.js'],
  ['fota-web-extras_bg.wasm', '_bg.wasm'],
  ['encoder-worker.js', '.js'],
];
const indexPath = path.join(dir, 'index.html');
let index = fs.readFileSync(indexPath, 'utf8');
for (const [name, tail] of FILES) {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) {
    console.error(`web/extras.mjs: ${name} is missing from ${dir} (see index.html's links)`);
    process.exit(1);
  }
  const hash = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 16);
  const hashed = `${name.slice(0, -tail.length)}-${hash}${tail}`;
  fs.renameSync(file, path.join(dir, hashed));
  // The name as an attribute value (quoted or not, after the public URL's slash).
  const named = new RegExp(`(?<=[/="'])${name.replace(/[.]/g, '\\.')}(?=["'\\s>])`, 'g');
  if (!named.test(index)) {
    console.error(`web/extras.mjs: index.html does not name ${name} (Trunk.toml, pattern_script)`);
    process.exit(1);
  }
  index = index.replace(named, hashed);
  console.log(`${name} -> ${hashed}`);
}
// The app's WebAssembly's size as built, for the first screen's download progress
// (web/boot.js): the browser's stream gives decoded bytes, Content-Length compressed ones.
const wasm = /data-fota-wasm="?\/?([^"\s>]+\.wasm)/.exec(index);
if (!wasm || !fs.existsSync(path.join(dir, wasm[1]))) {
  console.error('web/extras.mjs: index.html does not name the app\'s WebAssembly (data-fota-wasm)');
  process.exit(1);
}
index = index.replace(/(?=data-fota-wasm=)/, `data-wasm-size=${fs.statSync(path.join(dir, wasm[1])).size} `);
fs.writeFileSync(indexPath, index);
