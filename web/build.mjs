// Builds the dashboard bundle: content-hashed file names, precompressed gzip, a manifest, and
// optionally the C++ source that embeds it in the gateway (gateway/web, docs/dashboard.md).
//
// Usage: node build.mjs [--out DIR] [--modules DIR] [--cpp FILE]
//   --out DIR      where dist/ goes (default ./dist)
//   --modules DIR  the node_modules holding uplot (default ./node_modules)
//   --cpp FILE     also write the C++ table of assets (rewritten only when it changes)
//
// No bundler: the ES modules stay modules. Each file's name carries the hash of its content
// after its imports were rewritten to the hashed names of what it imports, so a change anywhere
// changes the names of everything that depends on it, and /assets/ can be cached forever.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, constants } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const out = resolve(opt('--out', join(here, 'dist')));
const modules = resolve(opt('--modules', join(here, 'node_modules')));
const cppFile = opt('--cpp', '');
const src = join(here, 'src');

const read = (p) => readFileSync(p, 'utf8');
const uplotDir = join(modules, 'uplot', 'dist');
if (!existsSync(uplotDir)) {
  console.error(`build.mjs: ${uplotDir} is missing; run npm ci in web/ first`);
  process.exit(1);
}

// name -> {content, type}; JS modules refer to each other as './name'.
const sources = new Map([
  ['uPlot.js', { content: read(join(uplotDir, 'uPlot.esm.js')), type: 'text/javascript; charset=utf-8' }],
  ['api.js', { content: read(join(src, 'api.js')), type: 'text/javascript; charset=utf-8' }],
  ['chart.js', { content: read(join(src, 'chart.js')), type: 'text/javascript; charset=utf-8' }],
  ['app.js', { content: read(join(src, 'app.js')), type: 'text/javascript; charset=utf-8' }],
  // uPlot's stylesheet goes with ours: one request.
  ['app.css', {
    content: `${read(join(uplotDir, 'uPlot.min.css'))}\n${read(join(src, 'app.css'))}`,
    type: 'text/css; charset=utf-8',
  }],
]);

const hash = (s) => createHash('sha256').update(s).digest('hex');
const hashed = new Map(); // name -> hashed name
const refRe = /(['"])\.\/([A-Za-z0-9_-]+\.(?:js|css))\1/g;

function resolveName(name, stack = []) {
  if (hashed.has(name)) return hashed.get(name);
  if (stack.includes(name)) throw new Error(`import cycle: ${[...stack, name].join(' -> ')}`);
  const s = sources.get(name);
  s.content = s.content.replace(refRe, (m, q, ref) => {
    if (!sources.has(ref)) throw new Error(`${name} refers to unknown ./${ref}`);
    return `${q}./${resolveName(ref, [...stack, name])}${q}`;
  });
  const dot = name.lastIndexOf('.');
  const h = `${name.slice(0, dot)}.${hash(s.content).slice(0, 10)}${name.slice(dot)}`;
  hashed.set(name, h);
  return h;
}
for (const name of sources.keys()) resolveName(name);

// index.html names the hashed entry points under /assets/, and preloads app.js's static imports
// so the browser fetches them in parallel instead of one after the other.
let html = read(join(src, 'index.html'));
html = html.replace(refRe, (m, q, ref) => `${q}/assets/${hashed.get(ref)}${q}`);
const preload = ['api.js'].map((n) => `<link rel="modulepreload" href="/assets/${hashed.get(n)}">`).join('\n');
html = html.replace('</head>', `${preload}\n</head>`);

const assets = [{ path: '/', file: 'index.html', content: html, type: 'text/html; charset=utf-8', immutable: false }];
for (const [name, s] of sources) {
  assets.push({ path: `/assets/${hashed.get(name)}`, file: `assets/${hashed.get(name)}`, content: s.content, type: s.type, immutable: true });
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
const manifest = { files: {}, assets: [] };
let total = 0;
for (const a of assets) {
  a.bytes = Buffer.from(a.content, 'utf8');
  a.gz = gzipSync(a.bytes, { level: constants.Z_BEST_COMPRESSION });
  a.etag = hash(a.bytes).slice(0, 16);
  writeFileSync(join(out, a.file), a.bytes);
  writeFileSync(join(out, `${a.file}.gz`), a.gz);
  manifest.assets.push({ path: a.path, bytes: a.bytes.length, gzip_bytes: a.gz.length, immutable: a.immutable });
  total += a.gz.length;
}
for (const [name, h] of hashed) manifest.files[name] = `/assets/${h}`;
manifest.gzip_bytes = total;
writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);

// The C++ table: each body as a string literal (printable ASCII as is, the rest as 3-digit
// octal escapes, which never run into the next character), split into lines.
function literal(buf) {
  const lines = [];
  let line = '';
  for (const b of buf) {
    if (b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c && b !== 0x3f) line += String.fromCharCode(b);
    else line += `\\${b.toString(8).padStart(3, '0')}`;
    if (line.length >= 96) {
      lines.push(`"${line}"`);
      line = '';
    }
  }
  if (line || !lines.length) lines.push(`"${line}"`);
  return lines.join('\n    ');
}

if (cppFile) {
  let cpp = '// Generated by web/build.mjs from web/; do not edit.\n';
  cpp += '#include <cstddef>\n#include <string_view>\n\n#include "outpost/gateway/web/assets.h"\n\n';
  cpp += 'namespace outpost::gateway::web {\nnamespace {\n\n';
  assets.forEach((a, i) => {
    cpp += `// ${a.path}\nconstexpr char kBody${i}[] =\n    ${literal(a.bytes)};\n`;
    cpp += `constexpr char kGzip${i}[] =\n    ${literal(a.gz)};\n\n`;
  });
  cpp += 'constexpr Asset kAssets[] = {\n';
  assets.forEach((a, i) => {
    cpp += `    {"${a.path}", "${a.type}", "\\"${a.etag}\\"", ${a.immutable},\n`;
    cpp += `     std::string_view(kBody${i}, sizeof(kBody${i}) - 1),\n`;
    cpp += `     std::string_view(kGzip${i}, sizeof(kGzip${i}) - 1)},\n`;
  });
  cpp += '};\n\n}  // namespace\n\n';
  cpp += 'AssetTable BundledAssets() { return {kAssets, sizeof(kAssets) / sizeof(kAssets[0])}; }\n\n';
  cpp += '}  // namespace outpost::gateway::web\n';
  const old = existsSync(cppFile) ? read(cppFile) : '';
  if (old !== cpp) {
    mkdirSync(dirname(resolve(cppFile)), { recursive: true });
    writeFileSync(cppFile, cpp);
  }
}
console.log(`web: ${assets.length} files, ${(total / 1024).toFixed(1)} KiB gzip -> ${out}`);
