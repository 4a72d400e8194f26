#!/usr/bin/env node
// Builds the sparse kernels (assembly/kernels.ts, AssemblyScript) into WebAssembly with SIMD, in two
// variants: build/kernels.wasm (SIMD) and build/kernels-relaxed.wasm (SIMD + relaxed SIMD, for fused
// multiply-add where the engine offers it). Both import one shared memory (env.memory), so that
// worker threads can run the same kernels on the same data. Run by `npm run build:wasm` (part of
// `npm run build` and of `prepare`, so `npm ci` builds it). Prints one line; exits non-zero on error.
import { mkdirSync, statSync, renameSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const src = join(here, 'assembly', 'kernels.ts');
const outDir = join(here, 'build');

// 65536 pages = 4 GiB, the most a 32-bit memory can address. A shared memory must declare its
// maximum; it only reserves address space.
const common = [
  relative(process.cwd(), src),
  '-O3', '--noAssert', '--runtime', 'stub',
  '--importMemory', '--sharedMemory', '--initialMemory', '1', '--maximumMemory', '65536',
  '--noColors',
];
const variants = [
  { file: 'kernels.wasm', features: 'simd,threads' },
  { file: 'kernels-relaxed.wasm', features: 'simd,threads,relaxed-simd' },
];

async function main() {
  let asc;
  try {
    asc = (await import('assemblyscript/asc')).default;
  } catch (e) {
    throw new Error(`cannot load the AssemblyScript compiler (devDependency "assemblyscript"): ${e.message}`);
  }
  mkdirSync(outDir, { recursive: true });
  const sizes = [];
  for (const v of variants) {
    const target = join(outDir, v.file);
    const tmp = `${target}.${process.pid}.tmp`;
    let log = '';
    const stream = { write(s) { log += String(s); return true; } };
    const { error } = await asc.main(
      [...common, '--enable', v.features, '--outFile', relative(process.cwd(), tmp)],
      { stdout: stream, stderr: stream },
    );
    if (error) throw new Error(`${v.file}: ${error.message}\n${log}`);
    renameSync(tmp, target);
    sizes.push(`${v.file} ${statSync(target).size} B`);
  }
  console.log(`build:wasm: ${sizes.join(', ')} -> ${relative(root, outDir)}/`);
}

main().catch((e) => {
  console.error(`build:wasm failed: ${e.message}`);
  process.exit(1);
});
