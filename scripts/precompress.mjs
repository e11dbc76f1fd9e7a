// Writes a brotli (.br) and a gzip (.gz) copy next to every .wasm, .js and .css file in a
// folder, so the server sends them as they are instead of compressing on every request.
//   usage: node scripts/precompress.mjs <folder> [release|debug]
// Release builds use the strongest settings; debug builds (an 8 MB bundle) faster ones.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const [folder, mode = 'debug'] = process.argv.slice(2);
if (!folder) {
  console.error('usage: node scripts/precompress.mjs <folder> [release|debug]');
  process.exit(2);
}
const best = mode === 'release';
for (const name of readdirSync(folder)) {
  if (!/\.(wasm|js|css)$/.test(name)) continue;
  const file = path.join(folder, name);
  const data = readFileSync(file);
  const br = zlib.brotliCompressSync(data, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: best ? 11 : 5,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  const gz = zlib.gzipSync(data, { level: best ? 9 : 6 });
  writeFileSync(`${file}.br`, br);
  writeFileSync(`${file}.gz`, gz);
  console.log(`${name}: ${data.length} bytes, brotli ${br.length}, gzip ${gz.length}`);
}
