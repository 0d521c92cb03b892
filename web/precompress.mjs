// Writes a .br and a .gz next to every text and WebAssembly file of a web app build, so
// that `fota serve` (which sends a compressed neighbour when the browser accepts it) puts
// the app on the wire compressed. Run by Trunk after each build (Trunk.toml, hooks).
//
//   node web/precompress.mjs DIR
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node web/precompress.mjs DIR');
  process.exit(2);
}
const KINDS = new Set(['.wasm', '.js', '.mjs', '.css', '.html', '.svg', '.json', '.webmanifest', '.txt']);
let plain = 0;
let br = 0;
for (const name of fs.readdirSync(dir)) {
  const file = path.join(dir, name);
  if (!KINDS.has(path.extname(name)) || !fs.statSync(file).isFile()) continue;
  const data = fs.readFileSync(file);
  const b = zlib.brotliCompressSync(data, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  fs.writeFileSync(`${file}.br`, b);
  fs.writeFileSync(`${file}.gz`, zlib.gzipSync(data, { level: 9 }));
  plain += data.length;
  br += b.length;
}
console.log(`precompressed ${dir}: ${plain} bytes, ${br} as brotli`);
