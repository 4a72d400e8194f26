// Sparse kernels for the always-sparse `csr` format, compiled by ../build.mjs to WebAssembly with
// SIMD (kernels.wasm) and with relaxed SIMD, for fused multiply-add (kernels-relaxed.wasm).
//
// Every pointer is a byte offset into the linear memory, which is imported and shared between the
// main thread and the worker threads (see ../index.ts). Nothing here allocates. Each kernel takes a
// range of the work (rows, batch columns or pairs) so that callers can split it between threads.
//
// Activations are feature-major: a matrix of n features for a batch of B is stored n x B row-major,
// so a feature's B values are contiguous and one nonzero of the sparse matrix multiplies a whole
// contiguous row. Offsets are computed as index * stride with stride = B * 4 bytes, never as a flat
// row * cols index of the sparse matrix. Any batch size works (odd ones take scalar tails).
//
// SpMM works on groups of up to 4 nonzeros of a row: y += v0·x[c0] + v1·x[c1] + v2·x[c2] + v3·x[c3],
// streaming along the batch. This keeps few values live (V8 has 15 usable SIMD registers, and kernels
// with 16 accumulators spilled and ran slower). When the dense operand does not fit in L2 (~1 MiB
// used here), the columns of A are processed in panels whose rows of x do fit, and the outputs are
// revisited once per panel ("cursor" keeps where each row stopped). This works for any column order
// within a row; sorted rows (the usual CSR) are what make the panels effective.
//
// The gather/scatter group functions below follow one pattern for 1..4 nonzeros and were written
// out by a small generator; edit them together.

/** acc + a · b (fused where the build has relaxed SIMD). */
@inline function madd(acc: v128, a: v128, b: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

@inline function hsum(a: v128): f32 {
  const s = f32x4.add(a, v128.shuffle<f32>(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

@inline function gather1First(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, f32x4.mul(v128.load(p0 + o, 0), v0), 0);
    v128.store(y + o, f32x4.mul(v128.load(p0 + o, 16), v0), 16);
    v128.store(y + o, f32x4.mul(v128.load(p0 + o, 32), v0), 32);
    v128.store(y + o, f32x4.mul(v128.load(p0 + o, 48), v0), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, f32x4.mul(v128.load(p0 + o), v0));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(p0 + o) * f0);
}

@inline function gather1(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, madd(v128.load(y + o, 0), v128.load(p0 + o, 0), v0), 0);
    v128.store(y + o, madd(v128.load(y + o, 16), v128.load(p0 + o, 16), v0), 16);
    v128.store(y + o, madd(v128.load(y + o, 32), v128.load(p0 + o, 32), v0), 32);
    v128.store(y + o, madd(v128.load(y + o, 48), v128.load(p0 + o, 48), v0), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, madd(v128.load(y + o), v128.load(p0 + o), v0));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(y + o) + load<f32>(p0 + o) * f0);
}

@inline function gather2First(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = x + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, madd(f32x4.mul(v128.load(p0 + o, 0), v0), v128.load(p1 + o, 0), v1), 0);
    v128.store(y + o, madd(f32x4.mul(v128.load(p0 + o, 16), v0), v128.load(p1 + o, 16), v1), 16);
    v128.store(y + o, madd(f32x4.mul(v128.load(p0 + o, 32), v0), v128.load(p1 + o, 32), v1), 32);
    v128.store(y + o, madd(f32x4.mul(v128.load(p0 + o, 48), v0), v128.load(p1 + o, 48), v1), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, madd(f32x4.mul(v128.load(p0 + o), v0), v128.load(p1 + o), v1));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(p0 + o) * f0 + load<f32>(p1 + o) * f1);
}

@inline function gather2(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = x + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, madd(madd(v128.load(y + o, 0), v128.load(p0 + o, 0), v0), v128.load(p1 + o, 0), v1), 0);
    v128.store(y + o, madd(madd(v128.load(y + o, 16), v128.load(p0 + o, 16), v0), v128.load(p1 + o, 16), v1), 16);
    v128.store(y + o, madd(madd(v128.load(y + o, 32), v128.load(p0 + o, 32), v0), v128.load(p1 + o, 32), v1), 32);
    v128.store(y + o, madd(madd(v128.load(y + o, 48), v128.load(p0 + o, 48), v0), v128.load(p1 + o, 48), v1), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, madd(madd(v128.load(y + o), v128.load(p0 + o), v0), v128.load(p1 + o), v1));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(y + o) + load<f32>(p0 + o) * f0 + load<f32>(p1 + o) * f1);
}

@inline function gather3First(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = x + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  const p2 = x + <usize>load<i32>(colIdx + (k << 2), 8) * stride;
  const f2 = load<f32>(vals + (k << 2), 8);
  const v2 = f32x4.splat(f2);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, madd(madd(f32x4.mul(v128.load(p0 + o, 0), v0), v128.load(p1 + o, 0), v1), v128.load(p2 + o, 0), v2), 0);
    v128.store(y + o, madd(madd(f32x4.mul(v128.load(p0 + o, 16), v0), v128.load(p1 + o, 16), v1), v128.load(p2 + o, 16), v2), 16);
    v128.store(y + o, madd(madd(f32x4.mul(v128.load(p0 + o, 32), v0), v128.load(p1 + o, 32), v1), v128.load(p2 + o, 32), v2), 32);
    v128.store(y + o, madd(madd(f32x4.mul(v128.load(p0 + o, 48), v0), v128.load(p1 + o, 48), v1), v128.load(p2 + o, 48), v2), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, madd(madd(f32x4.mul(v128.load(p0 + o), v0), v128.load(p1 + o), v1), v128.load(p2 + o), v2));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(p0 + o) * f0 + load<f32>(p1 + o) * f1 + load<f32>(p2 + o) * f2);
}

@inline function gather3(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = x + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  const p2 = x + <usize>load<i32>(colIdx + (k << 2), 8) * stride;
  const f2 = load<f32>(vals + (k << 2), 8);
  const v2 = f32x4.splat(f2);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, madd(madd(madd(v128.load(y + o, 0), v128.load(p0 + o, 0), v0), v128.load(p1 + o, 0), v1), v128.load(p2 + o, 0), v2), 0);
    v128.store(y + o, madd(madd(madd(v128.load(y + o, 16), v128.load(p0 + o, 16), v0), v128.load(p1 + o, 16), v1), v128.load(p2 + o, 16), v2), 16);
    v128.store(y + o, madd(madd(madd(v128.load(y + o, 32), v128.load(p0 + o, 32), v0), v128.load(p1 + o, 32), v1), v128.load(p2 + o, 32), v2), 32);
    v128.store(y + o, madd(madd(madd(v128.load(y + o, 48), v128.load(p0 + o, 48), v0), v128.load(p1 + o, 48), v1), v128.load(p2 + o, 48), v2), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, madd(madd(madd(v128.load(y + o), v128.load(p0 + o), v0), v128.load(p1 + o), v1), v128.load(p2 + o), v2));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(y + o) + load<f32>(p0 + o) * f0 + load<f32>(p1 + o) * f1 + load<f32>(p2 + o) * f2);
}

@inline function gather4First(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = x + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  const p2 = x + <usize>load<i32>(colIdx + (k << 2), 8) * stride;
  const f2 = load<f32>(vals + (k << 2), 8);
  const v2 = f32x4.splat(f2);
  const p3 = x + <usize>load<i32>(colIdx + (k << 2), 12) * stride;
  const f3 = load<f32>(vals + (k << 2), 12);
  const v3 = f32x4.splat(f3);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, madd(madd(madd(f32x4.mul(v128.load(p0 + o, 0), v0), v128.load(p1 + o, 0), v1), v128.load(p2 + o, 0), v2), v128.load(p3 + o, 0), v3), 0);
    v128.store(y + o, madd(madd(madd(f32x4.mul(v128.load(p0 + o, 16), v0), v128.load(p1 + o, 16), v1), v128.load(p2 + o, 16), v2), v128.load(p3 + o, 16), v3), 16);
    v128.store(y + o, madd(madd(madd(f32x4.mul(v128.load(p0 + o, 32), v0), v128.load(p1 + o, 32), v1), v128.load(p2 + o, 32), v2), v128.load(p3 + o, 32), v3), 32);
    v128.store(y + o, madd(madd(madd(f32x4.mul(v128.load(p0 + o, 48), v0), v128.load(p1 + o, 48), v1), v128.load(p2 + o, 48), v2), v128.load(p3 + o, 48), v3), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, madd(madd(madd(f32x4.mul(v128.load(p0 + o), v0), v128.load(p1 + o), v1), v128.load(p2 + o), v2), v128.load(p3 + o), v3));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(p0 + o) * f0 + load<f32>(p1 + o) * f1 + load<f32>(p2 + o) * f2 + load<f32>(p3 + o) * f3);
}

@inline function gather4(k: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  const p0 = x + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = x + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  const p2 = x + <usize>load<i32>(colIdx + (k << 2), 8) * stride;
  const f2 = load<f32>(vals + (k << 2), 8);
  const v2 = f32x4.splat(f2);
  const p3 = x + <usize>load<i32>(colIdx + (k << 2), 12) * stride;
  const f3 = load<f32>(vals + (k << 2), 12);
  const v3 = f32x4.splat(f3);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    v128.store(y + o, madd(madd(madd(madd(v128.load(y + o, 0), v128.load(p0 + o, 0), v0), v128.load(p1 + o, 0), v1), v128.load(p2 + o, 0), v2), v128.load(p3 + o, 0), v3), 0);
    v128.store(y + o, madd(madd(madd(madd(v128.load(y + o, 16), v128.load(p0 + o, 16), v0), v128.load(p1 + o, 16), v1), v128.load(p2 + o, 16), v2), v128.load(p3 + o, 16), v3), 16);
    v128.store(y + o, madd(madd(madd(madd(v128.load(y + o, 32), v128.load(p0 + o, 32), v0), v128.load(p1 + o, 32), v1), v128.load(p2 + o, 32), v2), v128.load(p3 + o, 32), v3), 32);
    v128.store(y + o, madd(madd(madd(madd(v128.load(y + o, 48), v128.load(p0 + o, 48), v0), v128.load(p1 + o, 48), v1), v128.load(p2 + o, 48), v2), v128.load(p3 + o, 48), v3), 48);
  }
  for (; o + 16 <= nb; o += 16) v128.store(y + o, madd(madd(madd(madd(v128.load(y + o), v128.load(p0 + o), v0), v128.load(p1 + o), v1), v128.load(p2 + o), v2), v128.load(p3 + o), v3));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(y + o) + load<f32>(p0 + o) * f0 + load<f32>(p1 + o) * f1 + load<f32>(p2 + o) * f2 + load<f32>(p3 + o) * f3);
}

@inline function scatter1(k: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize, nb: usize): void {
  const p0 = dx + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  let o: usize = 0;
  for (; o + 32 <= nb; o += 32) {
    const d0 = v128.load(d + o, 0), d1 = v128.load(d + o, 16);
    v128.store(p0 + o, madd(v128.load(p0 + o, 0), d0, v0), 0);
    v128.store(p0 + o, madd(v128.load(p0 + o, 16), d1, v0), 16);
  }
  for (; o + 16 <= nb; o += 16) {
    const d0 = v128.load(d + o);
    v128.store(p0 + o, madd(v128.load(p0 + o), d0, v0));
  }
  for (; o < nb; o += 4) {
    const e = load<f32>(d + o);
    store<f32>(p0 + o, load<f32>(p0 + o) + e * f0);
  }
}

@inline function scatter2(k: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize, nb: usize): void {
  const p0 = dx + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = dx + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  let o: usize = 0;
  for (; o + 32 <= nb; o += 32) {
    const d0 = v128.load(d + o, 0), d1 = v128.load(d + o, 16);
    v128.store(p0 + o, madd(v128.load(p0 + o, 0), d0, v0), 0);
    v128.store(p0 + o, madd(v128.load(p0 + o, 16), d1, v0), 16);
    v128.store(p1 + o, madd(v128.load(p1 + o, 0), d0, v1), 0);
    v128.store(p1 + o, madd(v128.load(p1 + o, 16), d1, v1), 16);
  }
  for (; o + 16 <= nb; o += 16) {
    const d0 = v128.load(d + o);
    v128.store(p0 + o, madd(v128.load(p0 + o), d0, v0));
    v128.store(p1 + o, madd(v128.load(p1 + o), d0, v1));
  }
  for (; o < nb; o += 4) {
    const e = load<f32>(d + o);
    store<f32>(p0 + o, load<f32>(p0 + o) + e * f0);
    store<f32>(p1 + o, load<f32>(p1 + o) + e * f1);
  }
}

@inline function scatter3(k: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize, nb: usize): void {
  const p0 = dx + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = dx + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  const p2 = dx + <usize>load<i32>(colIdx + (k << 2), 8) * stride;
  const f2 = load<f32>(vals + (k << 2), 8);
  const v2 = f32x4.splat(f2);
  let o: usize = 0;
  for (; o + 32 <= nb; o += 32) {
    const d0 = v128.load(d + o, 0), d1 = v128.load(d + o, 16);
    v128.store(p0 + o, madd(v128.load(p0 + o, 0), d0, v0), 0);
    v128.store(p0 + o, madd(v128.load(p0 + o, 16), d1, v0), 16);
    v128.store(p1 + o, madd(v128.load(p1 + o, 0), d0, v1), 0);
    v128.store(p1 + o, madd(v128.load(p1 + o, 16), d1, v1), 16);
    v128.store(p2 + o, madd(v128.load(p2 + o, 0), d0, v2), 0);
    v128.store(p2 + o, madd(v128.load(p2 + o, 16), d1, v2), 16);
  }
  for (; o + 16 <= nb; o += 16) {
    const d0 = v128.load(d + o);
    v128.store(p0 + o, madd(v128.load(p0 + o), d0, v0));
    v128.store(p1 + o, madd(v128.load(p1 + o), d0, v1));
    v128.store(p2 + o, madd(v128.load(p2 + o), d0, v2));
  }
  for (; o < nb; o += 4) {
    const e = load<f32>(d + o);
    store<f32>(p0 + o, load<f32>(p0 + o) + e * f0);
    store<f32>(p1 + o, load<f32>(p1 + o) + e * f1);
    store<f32>(p2 + o, load<f32>(p2 + o) + e * f2);
  }
}

@inline function scatter4(k: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize, nb: usize): void {
  const p0 = dx + <usize>load<i32>(colIdx + (k << 2), 0) * stride;
  const f0 = load<f32>(vals + (k << 2), 0);
  const v0 = f32x4.splat(f0);
  const p1 = dx + <usize>load<i32>(colIdx + (k << 2), 4) * stride;
  const f1 = load<f32>(vals + (k << 2), 4);
  const v1 = f32x4.splat(f1);
  const p2 = dx + <usize>load<i32>(colIdx + (k << 2), 8) * stride;
  const f2 = load<f32>(vals + (k << 2), 8);
  const v2 = f32x4.splat(f2);
  const p3 = dx + <usize>load<i32>(colIdx + (k << 2), 12) * stride;
  const f3 = load<f32>(vals + (k << 2), 12);
  const v3 = f32x4.splat(f3);
  let o: usize = 0;
  for (; o + 32 <= nb; o += 32) {
    const d0 = v128.load(d + o, 0), d1 = v128.load(d + o, 16);
    v128.store(p0 + o, madd(v128.load(p0 + o, 0), d0, v0), 0);
    v128.store(p0 + o, madd(v128.load(p0 + o, 16), d1, v0), 16);
    v128.store(p1 + o, madd(v128.load(p1 + o, 0), d0, v1), 0);
    v128.store(p1 + o, madd(v128.load(p1 + o, 16), d1, v1), 16);
    v128.store(p2 + o, madd(v128.load(p2 + o, 0), d0, v2), 0);
    v128.store(p2 + o, madd(v128.load(p2 + o, 16), d1, v2), 16);
    v128.store(p3 + o, madd(v128.load(p3 + o, 0), d0, v3), 0);
    v128.store(p3 + o, madd(v128.load(p3 + o, 16), d1, v3), 16);
  }
  for (; o + 16 <= nb; o += 16) {
    const d0 = v128.load(d + o);
    v128.store(p0 + o, madd(v128.load(p0 + o), d0, v0));
    v128.store(p1 + o, madd(v128.load(p1 + o), d0, v1));
    v128.store(p2 + o, madd(v128.load(p2 + o), d0, v2));
    v128.store(p3 + o, madd(v128.load(p3 + o), d0, v3));
  }
  for (; o < nb; o += 4) {
    const e = load<f32>(d + o);
    store<f32>(p0 + o, load<f32>(p0 + o) + e * f0);
    store<f32>(p1 + o, load<f32>(p1 + o) + e * f1);
    store<f32>(p2 + o, load<f32>(p2 + o) + e * f2);
    store<f32>(p3 + o, load<f32>(p3 + o) + e * f3);
  }
}

/** y[0..nb) = (first ? 0 : y) + Σ_{k in [k, k1)} vals[k] · x[colIdx[k]][0..nb). */
@inline function gatherRange(k: usize, k1: usize, first: bool, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, nb: usize): void {
  if (k == k1) { if (first) memory.fill(y, 0, nb); return; }
  if (first) {
    const m = k1 - k;
    if (m >= 4) { gather4First(k, colIdx, vals, x, stride, y, nb); k += 4; }
    else if (m == 3) { gather3First(k, colIdx, vals, x, stride, y, nb); return; }
    else if (m == 2) { gather2First(k, colIdx, vals, x, stride, y, nb); return; }
    else { gather1First(k, colIdx, vals, x, stride, y, nb); return; }
  }
  for (; k + 4 <= k1; k += 4) gather4(k, colIdx, vals, x, stride, y, nb);
  const m = k1 - k;
  if (m == 3) gather3(k, colIdx, vals, x, stride, y, nb);
  else if (m == 2) gather2(k, colIdx, vals, x, stride, y, nb);
  else if (m == 1) gather1(k, colIdx, vals, x, stride, y, nb);
}

/** dx[colIdx[k]][0..nb) += vals[k] · d[0..nb) for k in [k, k1). */
@inline function scatterRange(k: usize, k1: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize, nb: usize): void {
  for (; k + 4 <= k1; k += 4) scatter4(k, colIdx, vals, d, stride, dx, nb);
  const m = k1 - k;
  if (m == 3) scatter3(k, colIdx, vals, d, stride, dx, nb);
  else if (m == 2) scatter2(k, colIdx, vals, d, stride, dx, nb);
  else if (m == 1) scatter1(k, colIdx, vals, d, stride, dx, nb);
}

/** End of the run of row entries from k on whose column is below `end`. */
@inline function panelEnd(k: usize, kEnd: usize, colIdx: usize, end: i32): usize {
  while (k < kEnd && load<i32>(colIdx + (k << 2)) < end) k++;
  return k;
}

/**
 * y = A · x for rows [r0, r1) of A. A is CSR (rowPtr: rows+1 int32, colIdx/vals), x is cols x B,
 * y is rows x B (feature-major). `panel` columns of A at a time (panel >= cols: no panels), with
 * `cursor` scratch of rows int32 (only [r0, r1) is used, so threads can share one).
 */
export function spmm(rowPtr: usize, colIdx: usize, vals: usize, x: usize, y: usize, batch: i32, r0: i32, r1: i32, cols: i32, panel: i32, cursor: usize): void {
  const stride = <usize>batch << 2;
  if (panel >= cols) {
    for (let r = <usize>r0; r < <usize>r1; r++) {
      gatherRange(<usize>load<i32>(rowPtr + (r << 2)), <usize>load<i32>(rowPtr + (r << 2), 4), true, colIdx, vals, x, stride, y + r * stride, stride);
    }
    return;
  }
  for (let r = <usize>r0; r < <usize>r1; r++) store<i32>(cursor + (r << 2), load<i32>(rowPtr + (r << 2)));
  for (let c0 = 0; c0 < cols; c0 += panel) {
    const last = cols - c0 <= panel;
    const end = c0 + panel;
    for (let r = <usize>r0; r < <usize>r1; r++) {
      const k = <usize>load<i32>(cursor + (r << 2));
      const kEnd = <usize>load<i32>(rowPtr + (r << 2), 4);
      const k1 = last ? kEnd : panelEnd(k, kEnd, colIdx, end);
      gatherRange(k, k1, c0 == 0, colIdx, vals, x, stride, y + r * stride, stride);
      store<i32>(cursor + (r << 2), <i32>k1);
    }
  }
}

/**
 * dx = Aᵀ · dy for batch columns [b0, b1), over all rows of A (threads split the batch, so no two
 * write the same element). dy is rows x B, dx is cols x B; dx[:, b0:b1] is overwritten. Panels of
 * `panel` columns of A (rows of dx) as in spmm, with `cursor` scratch of rows int32 (one per thread).
 */
export function spmmT(rowPtr: usize, colIdx: usize, vals: usize, dy: usize, dx: usize, batch: i32, rows: i32, cols: i32, b0: i32, b1: i32, panel: i32, cursor: usize): void {
  const stride = <usize>batch << 2;
  const bo = <usize>b0 << 2;
  const nb = (<usize>b1 << 2) - bo;
  const R = <usize>rows;
  if (nb == stride) memory.fill(dx, 0, <usize>cols * stride);
  else for (let c: usize = 0; c < <usize>cols; c++) memory.fill(dx + c * stride + bo, 0, nb);
  if (panel >= cols) {
    for (let r: usize = 0; r < R; r++) {
      scatterRange(<usize>load<i32>(rowPtr + (r << 2)), <usize>load<i32>(rowPtr + (r << 2), 4), colIdx, vals, dy + r * stride + bo, stride, dx + bo, nb);
    }
    return;
  }
  for (let r: usize = 0; r < R; r++) store<i32>(cursor + (r << 2), load<i32>(rowPtr + (r << 2)));
  for (let c0 = 0; c0 < cols; c0 += panel) {
    const last = cols - c0 <= panel;
    const end = c0 + panel;
    for (let r: usize = 0; r < R; r++) {
      const k = <usize>load<i32>(cursor + (r << 2));
      const kEnd = <usize>load<i32>(rowPtr + (r << 2), 4);
      const k1 = last ? kEnd : panelEnd(k, kEnd, colIdx, end);
      if (k1 != k) scatterRange(k, k1, colIdx, vals, dy + r * stride + bo, stride, dx + bo, nb);
      store<i32>(cursor + (r << 2), <i32>k1);
    }
  }
}

@inline function dot(pa: usize, pb: usize, nb: usize): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    s0 = madd(s0, v128.load(pa + o, 0), v128.load(pb + o, 0));
    s1 = madd(s1, v128.load(pa + o, 16), v128.load(pb + o, 16));
    s2 = madd(s2, v128.load(pa + o, 32), v128.load(pb + o, 32));
    s3 = madd(s3, v128.load(pa + o, 48), v128.load(pb + o, 48));
  }
  for (; o + 16 <= nb; o += 16) s0 = madd(s0, v128.load(pa + o), v128.load(pb + o));
  let s = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (; o < nb; o += 4) s += load<f32>(pa + o) * load<f32>(pb + o);
  return s;
}

/** Two dot products sharing a: out[0] = a·b0, out[1] = a·b1 (8 independent accumulators). */
@inline function dot2(pa: usize, pb: usize, pc: usize, nb: usize, out0: usize, out1: usize): void {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  let t0 = f32x4.splat(0), t1 = f32x4.splat(0), t2 = f32x4.splat(0), t3 = f32x4.splat(0);
  let o: usize = 0;
  for (; o + 64 <= nb; o += 64) {
    const a0 = v128.load(pa + o, 0), a1 = v128.load(pa + o, 16), a2 = v128.load(pa + o, 32), a3 = v128.load(pa + o, 48);
    s0 = madd(s0, a0, v128.load(pb + o, 0));
    t0 = madd(t0, a0, v128.load(pc + o, 0));
    s1 = madd(s1, a1, v128.load(pb + o, 16));
    t1 = madd(t1, a1, v128.load(pc + o, 16));
    s2 = madd(s2, a2, v128.load(pb + o, 32));
    t2 = madd(t2, a2, v128.load(pc + o, 32));
    s3 = madd(s3, a3, v128.load(pb + o, 48));
    t3 = madd(t3, a3, v128.load(pc + o, 48));
  }
  for (; o + 16 <= nb; o += 16) {
    const a0 = v128.load(pa + o);
    s0 = madd(s0, a0, v128.load(pb + o));
    t0 = madd(t0, a0, v128.load(pc + o));
  }
  let s = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  let t = hsum(f32x4.add(f32x4.add(t0, t1), f32x4.add(t2, t3)));
  for (; o < nb; o += 4) {
    const a = load<f32>(pa + o);
    s += a * load<f32>(pb + o);
    t += a * load<f32>(pc + o);
  }
  store<f32>(out0, s);
  store<f32>(out1, t);
}

/** out[k] for the pairs order[i] (or i itself when order is 0), i in [i0, i1). */
@inline function pairs(order: usize, i0: usize, i1: usize, row: usize, col: usize, a: usize, b: usize, out: usize, stride: usize): void {
  let i = i0;
  while (i < i1) {
    const k = order ? <usize>load<i32>(order + (i << 2)) : i;
    const r = load<i32>(row + (k << 2));
    const pa = a + <usize>r * stride;
    if (i + 1 < i1) {
      const k2 = order ? <usize>load<i32>(order + (i << 2), 4) : i + 1;
      if (load<i32>(row + (k2 << 2)) == r) {
        dot2(pa, b + <usize>load<i32>(col + (k << 2)) * stride, b + <usize>load<i32>(col + (k2 << 2)) * stride, stride, out + (k << 2), out + (k2 << 2));
        i += 2;
        continue;
      }
    }
    store<f32>(out + (k << 2), dot(pa, b + <usize>load<i32>(col + (k << 2)) * stride, stride));
    i++;
  }
}

/**
 * out[k] = Σ_i a[row[k]·B + i] · b[col[k]·B + i] for pairs k in [k0, k1).
 * a is (rows x B), b is (cols x B), both feature-major. With shift < 31, the pairs are first
 * bucketed by col >> shift (a panel of b that fits in L2; stable, so pairs of a row stay together)
 * into `scratch` ((k1 - k0) + (cols >> shift) + 2 int32), then computed panel by panel. Each
 * output depends only on its pair, so the order changes nothing in the results.
 */
export function sddmm(row: usize, col: usize, a: usize, b: usize, out: usize, batch: i32, k0: i32, k1: i32, cols: i32, shift: i32, scratch: usize): void {
  const stride = <usize>batch << 2;
  if (shift >= 31) {
    pairs(0, <usize>k0, <usize>k1, row, col, a, b, out, stride);
    return;
  }
  const panels = (<usize>(cols - 1) >> <usize>shift) + 1;
  const pos = scratch;                       // panels + 1 counters
  const order = scratch + ((panels + 2) << 2); // k1 - k0 pair indices
  memory.fill(pos, 0, (panels + 1) << 2);
  for (let k = <usize>k0; k < <usize>k1; k++) {
    const p = pos + ((<usize>(load<i32>(col + (k << 2)) >>> shift) + 1) << 2);
    store<i32>(p, load<i32>(p) + 1);
  }
  for (let p: usize = 1; p <= panels; p++) store<i32>(pos + (p << 2), load<i32>(pos + (p << 2)) + load<i32>(pos + ((p - 1) << 2)));
  for (let k = <usize>k0; k < <usize>k1; k++) {
    const p = pos + (<usize>(load<i32>(col + (k << 2)) >>> shift) << 2);
    const i = <usize>load<i32>(p);
    store<i32>(p, <i32>i + 1);
    store<i32>(order + (i << 2), <i32>k);
  }
  pairs(order, 0, <usize>(k1 - k0), row, col, a, b, out, stride);
}

/**
 * dst (cols x rows) = transpose of src (rows x cols), for the source columns [c0, c1), i.e. the
 * destination rows [c0, c1). 4 x 4 SIMD blocks inside 32 x 32 tiles; scalar edges.
 */
export function transpose(src: usize, dst: usize, rows: i32, cols: i32, c0: i32, c1: i32): void {
  const R = <usize>rows;
  const ss = <usize>cols << 2, ds = R << 2; // row strides in bytes
  const ce = <usize>c1;
  for (let ct = <usize>c0; ct < ce; ct += 32) {
    const cte = min(ct + 32, ce);
    for (let rt: usize = 0; rt < R; rt += 32) {
      const rte = min(rt + 32, R);
      let r = rt;
      for (; r + 4 <= rte; r += 4) {
        let c = ct;
        const s = src + r * ss;
        for (; c + 4 <= cte; c += 4) {
          const p = s + (c << 2);
          const x0 = v128.load(p), x1 = v128.load(p + ss), x2 = v128.load(p + 2 * ss), x3 = v128.load(p + 3 * ss);
          const t0 = v128.shuffle<f32>(x0, x1, 0, 4, 1, 5); // x0[0] x1[0] x0[1] x1[1]
          const t1 = v128.shuffle<f32>(x2, x3, 0, 4, 1, 5); // x2[0] x3[0] x2[1] x3[1]
          const t2 = v128.shuffle<f32>(x0, x1, 2, 6, 3, 7);
          const t3 = v128.shuffle<f32>(x2, x3, 2, 6, 3, 7);
          const q = dst + c * ds + (r << 2);
          v128.store(q, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
          v128.store(q + ds, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
          v128.store(q + 2 * ds, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
          v128.store(q + 3 * ds, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
        }
        for (; c < cte; c++) {
          const q = dst + c * ds + (r << 2);
          const p = s + (c << 2);
          store<f32>(q, load<f32>(p)); store<f32>(q, load<f32>(p + ss), 4);
          store<f32>(q, load<f32>(p + 2 * ss), 8); store<f32>(q, load<f32>(p + 3 * ss), 12);
        }
      }
      for (; r < rte; r++) {
        for (let c = ct; c < cte; c++) store<f32>(dst + c * ds + (r << 2), load<f32>(src + r * ss + (c << 2)));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Convolutions over "planes": a batch of NHWC images stored channel-major, one plane per channel
// (and per stride phase), each plane the whole batch on one padded grid of Hg x Wg positions, laid
// out y, x, n (the batch innermost). A kernel tap (ky, kx) of a channel is then one fixed shift of its plane,
// so a sparse convolution is the SpMM gather above with a float offset per nonzero instead of a
// row of x: y[r][p] = Σ_k vals[k] · x[offs[k] + p], for every grid position p at once. Positions
// of the grid outside the output (right/bottom margins) are computed and never read.

const CONV_BLOCK: i32 = 1024;   // positions per block of a gather (a row's outputs stay in L1)
const SDDMM_BLOCK: i32 = 2048;  // positions per block of an offset dot product

/**
 * For rows r in [r0, r1) and positions [p0, p1): y[r·ystride + p] = Σ_{k in row r} vals[k] · x[offs[k] + p]
 * (offsets and strides in floats). Threads split the positions.
 */
export function convGather(rowPtr: usize, offs: usize, vals: usize, x: usize, y: usize, ystride: i32, r0: i32, r1: i32, p0: i32, p1: i32): void {
  const ys = <usize>ystride << 2;
  for (let b = p0; b < p1; b += CONV_BLOCK) {
    const e = min(b + CONV_BLOCK, p1);
    const nb = <usize>(e - b) << 2;
    const xb = x + (<usize>b << 2);
    const yb = y + (<usize>b << 2);
    for (let r = <usize>r0; r < <usize>r1; r++) {
      gatherRange(<usize>load<i32>(rowPtr + (r << 2)), <usize>load<i32>(rowPtr + (r << 2), 4), true, offs, vals, xb, 4, yb + r * ys, nb);
    }
  }
}

/** Writes (first) or adds a·b over nb bytes into out. */
@inline function dotInto(pa: usize, pb: usize, nb: usize, out: usize, first: bool): void {
  const s = dot(pa, pb, nb);
  store<f32>(out, first ? s : load<f32>(out) + s);
}

/**
 * out[k] = Σ_p a[aoff[k] + p] · b[boff[k] + p] for pairs k in [k0, k1) (offsets in floats), p over
 * the nspans position spans [start, end) at spans (int32 pairs), as partial dot products over
 * blocks of SDDMM_BLOCK positions of each span added in span and block order: the summation
 * order of a pair depends on nothing but the spans, so results do not depend on how pairs are
 * split. Consecutive pairs with the same aoff share their loads of a.
 */
export function convSddmm(aoff: usize, boff: usize, a: usize, b: usize, out: usize, spans: usize, nspans: i32, k0: i32, k1: i32): void {
  for (let sp = 0; sp < nspans; sp++) {
    const start = load<i32>(spans + (<usize>sp << 3)), end = load<i32>(spans + (<usize>sp << 3), 4);
    for (let blk = start; blk < end; blk += SDDMM_BLOCK) {
      const nb = <usize>(min(blk + SDDMM_BLOCK, end) - blk) << 2;
      const first = sp == 0 && blk == start;
      const bo = <usize>blk << 2;
      let k = <usize>k0;
      while (k < <usize>k1) {
        const ao = load<i32>(aoff + (k << 2));
        const pa = a + (<usize>ao << 2) + bo;
        const pb = b + (<usize>load<i32>(boff + (k << 2)) << 2) + bo;
        if (k + 1 < <usize>k1 && load<i32>(aoff + (k << 2), 4) == ao) {
          const pc = b + (<usize>load<i32>(boff + (k << 2), 4) << 2) + bo;
          const o0 = out + (k << 2);
          if (first) dot2(pa, pb, pc, nb, o0, o0 + 4);
          else {
            const s0 = load<f32>(o0), s1 = load<f32>(o0, 4);
            dot2(pa, pb, pc, nb, o0, o0 + 4);
            store<f32>(o0, s0 + load<f32>(o0));
            store<f32>(o0, s1 + load<f32>(o0, 4), 4);
          }
          k += 2;
          continue;
        }
        dotInto(pa, pb, nb, out + (k << 2), first);
        k++;
      }
    }
  }
}

/** 4 x 4 transpose: rows a0..a3 in, columns out (out[j] lane i = a_i lane j). */
@inline function t4(a0: v128, a1: v128, a2: v128, a3: v128, q: usize, qs: usize, bias: v128): void {
  const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
  const t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
  v128.store(q, f32x4.add(v128.shuffle<f32>(t0, t1, 0, 1, 4, 5), bias));
  v128.store(q + qs, f32x4.add(v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), bias));
  v128.store(q + 2 * qs, f32x4.add(v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), bias));
  v128.store(q + 3 * qs, f32x4.add(v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), bias));
}

/**
 * NHWC src (N images of H x W x C) into planes of dst (plane stride pstride floats), grid rows
 * [g0, g1) of every plane: plane ((py·s + px)·C + c) holds at position (gy·Wg + gx)·N + n the
 * pixel (n, y, x, c) with y = gy·s + py − top, x = gx·s + px − left, or 0 where that is outside
 * the image (padding, margins). The batch is innermost, so a row of the grid is Wg·N contiguous
 * positions and a kernel tap is one shift of (ky·Wg + kx)·N.
 */
export function pack(src: usize, dst: usize, pstride: i32, H: i32, W: i32, C: i32, s: i32, top: i32, left: i32, Hg: i32, Wg: i32, N: i32, g0: i32, g1: i32): void {
  const plane = <usize>pstride << 2;
  const row = <usize>(Wg * N) << 2;
  const img = <usize>(H * W * C) << 2;
  const simd = (C & 3) == 0 && (N & 3) == 0;
  for (let py = 0; py < s; py++) {
    for (let px = 0; px < s; px++) {
      const first = dst + <usize>((py * s + px) * C) * plane;
      // the grid columns holding pixels of this phase: [gxa, gxb); zeros either side
      const gxa = min(Wg, max(0, (left - px + s - 1) / s));
      const gxb = max(gxa, min(Wg, (W + left - px + s - 1) / s));
      for (let gy = g0; gy < g1; gy++) {
        const y = gy * s + py - top;
        const planes = first + <usize>gy * row;
        if (y < 0 || y >= H) {
          for (let c = 0; c < C; c++) memory.fill(planes + <usize>c * plane, 0, row);
          continue;
        }
        for (let c = 0; c < C; c++) {
          memory.fill(planes + <usize>c * plane, 0, <usize>(gxa * N) << 2);
          memory.fill(planes + <usize>c * plane + (<usize>(gxb * N) << 2), 0, <usize>((Wg - gxb) * N) << 2);
        }
        for (let gx = gxa; gx < gxb; gx++) {
          const x = gx * s + px - left;
          const sp = src + (<usize>((y * W + x) * C) << 2);
          const dp = planes + (<usize>(gx * N) << 2);
          if (simd) {
            for (let n = 0; n < N; n += 4) {
              const a = sp + <usize>n * img, d = dp + (<usize>n << 2);
              for (let c = 0; c < C; c += 4) {
                const o = <usize>c << 2;
                t4(v128.load(a + o), v128.load(a + img + o), v128.load(a + 2 * img + o), v128.load(a + 3 * img + o), d + <usize>c * plane, plane, f32x4.splat(0));
              }
            }
          } else {
            for (let n = 0; n < N; n++) {
              for (let c = 0; c < C; c++) store<f32>(dp + <usize>c * plane + (<usize>n << 2), load<f32>(sp + <usize>n * img + (<usize>c << 2)));
            }
          }
        }
      }
    }
  }
}

/**
 * The inverse of pack for image rows [y0, y1): dst NHWC (N x H x W x C) from the planes of src,
 * plus bias[c] where bias != 0; pixels beyond the grid get 0 (bias).
 */
export function unpack(src: usize, dst: usize, pstride: i32, H: i32, W: i32, C: i32, s: i32, top: i32, left: i32, Hg: i32, Wg: i32, N: i32, y0: i32, y1: i32, bias: usize): void {
  const plane = <usize>pstride << 2;
  const row = <usize>(Wg * N) << 2;
  const img = <usize>(H * W * C) << 2;
  const simd = (C & 3) == 0 && (N & 3) == 0;
  // four images at a time along the row, so that the stores run in four streams
  const nstep = simd ? 4 : 1;
  for (let y = y0; y < y1; y++) {
    const yy = y + top;
    const gy = yy / s;
    for (let n0 = 0; n0 < N; n0 += nstep) {
      for (let x = 0; x < W; x++) {
        const xx = x + left;
        const gx = xx / s;
        const dp = dst + <usize>n0 * img + (<usize>((y * W + x) * C) << 2);
        if (gy >= Hg || gx >= Wg) {
          for (let n = 0; n < nstep; n++) {
            for (let c = 0; c < C; c++) store<f32>(dp + <usize>n * img + (<usize>c << 2), bias ? load<f32>(bias + (<usize>c << 2)) : <f32>0);
          }
          continue;
        }
        const sp = src + <usize>(((yy % s) * s + xx % s) * C) * plane + <usize>gy * row + (<usize>(gx * N + n0) << 2);
        if (simd) {
          for (let c = 0; c < C; c += 4) {
            const a = sp + <usize>c * plane;
            const bv = bias ? v128.load(bias + (<usize>c << 2)) : f32x4.splat(0);
            t4(v128.load(a), v128.load(a + plane), v128.load(a + 2 * plane), v128.load(a + 3 * plane), dp + (<usize>c << 2), img, bv);
          }
        } else {
          for (let c = 0; c < C; c++) store<f32>(dp + (<usize>c << 2), load<f32>(sp + <usize>c * plane) + (bias ? load<f32>(bias + (<usize>c << 2)) : <f32>0));
        }
      }
    }
  }
}

/** out[r] = Σ_{p < len} src[r·stride + p] for rows [r0, r1) (strides in floats). */
export function sumRows(src: usize, out: usize, stride: i32, len: i32, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const p = src + (<usize>(r * stride) << 2);
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
    let o: usize = 0;
    const nb = <usize>len << 2;
    for (; o + 32 <= nb; o += 32) { s0 = f32x4.add(s0, v128.load(p + o)); s1 = f32x4.add(s1, v128.load(p + o, 16)); }
    let s = hsum(f32x4.add(s0, s1));
    for (; o < nb; o += 4) s += load<f32>(p + o);
    store<f32>(out + (<usize>r << 2), s);
  }
}

// ---------------------------------------------------------------------------------------------
// Batch norm over channels-last rows (M rows of C channels), fused with a residual add and ReLU,
// and the 2x2 max pool's gradient: the dense parts of a CNN step that tfjs runs as chains of
// single-threaded elementwise ops. Rows [m0, m1) per call, so threads split the rows.

/** out[c] = Σ_{m in [m0, m1)} x[m, c] (mode 0), Σ (x[m, c] - mean[c])² (mode 1). */
export function channelSums(x: usize, mean: usize, out: usize, C: i32, m0: i32, m1: i32, mode: i32): void {
  const cb = <usize>C << 2;
  memory.fill(out, 0, cb);
  const vec = (C & 3) == 0;
  for (let m = m0; m < m1; m++) {
    const row = x + <usize>m * cb;
    if (vec) {
      for (let o: usize = 0; o < cb; o += 16) {
        let v = v128.load(row + o);
        if (mode == 1) { v = f32x4.sub(v, v128.load(mean + o)); v = f32x4.mul(v, v); }
        v128.store(out + o, f32x4.add(v128.load(out + o), v));
      }
    } else {
      for (let o: usize = 0; o < cb; o += 4) {
        let v = load<f32>(row + o);
        if (mode == 1) { v -= load<f32>(mean + o); v *= v; }
        store<f32>(out + o, load<f32>(out + o) + v);
      }
    }
  }
}

/** y = x·scale + shift (+ res) (then ReLU when relu != 0), per channel; res 0: none. */
export function bnForward(x: usize, res: usize, y: usize, scale: usize, shift: usize, C: i32, relu: i32, m0: i32, m1: i32): void {
  const cb = <usize>C << 2;
  const zero = f32x4.splat(0);
  const vec = (C & 3) == 0;
  for (let m = m0; m < m1; m++) {
    const off = <usize>m * cb;
    if (vec) {
      for (let o: usize = 0; o < cb; o += 16) {
        let v = madd(v128.load(shift + o), v128.load(x + off + o), v128.load(scale + o));
        if (res) v = f32x4.add(v, v128.load(res + off + o));
        if (relu) v = f32x4.max(v, zero);
        v128.store(y + off + o, v);
      }
    } else {
      for (let o: usize = 0; o < cb; o += 4) {
        let v = load<f32>(x + off + o) * load<f32>(scale + o) + load<f32>(shift + o);
        if (res) v += load<f32>(res + off + o);
        if (relu && v < 0) v = 0;
        store<f32>(y + off + o, v);
      }
    }
  }
}

/** The gradient through an optional ReLU: dy where y > 0 (relu), else dy itself; 4 lanes / one float. */
@inline function gradMasked4(dy: usize, y: usize, relu: i32): v128 {
  const g = v128.load(dy);
  return relu ? v128.and(g, f32x4.gt(v128.load(y), f32x4.splat(0))) : g;
}
@inline function gradMasked(dy: usize, y: usize, relu: i32): f32 {
  return relu && !(load<f32>(y) > 0) ? 0 : load<f32>(dy);
}

/** g = dy masked by y > 0 (relu) or dy; out[c] = Σ g, out[C + c] = Σ g·(x - mean), rows [m0, m1). */
export function bnBackwardSums(dy: usize, y: usize, x: usize, mean: usize, out: usize, C: i32, relu: i32, m0: i32, m1: i32): void {
  const cb = <usize>C << 2;
  memory.fill(out, 0, cb << 1);
  const vec = (C & 3) == 0;
  for (let m = m0; m < m1; m++) {
    const off = <usize>m * cb;
    if (vec) {
      for (let o: usize = 0; o < cb; o += 16) {
        const g = gradMasked4(dy + off + o, y + off + o, relu);
        v128.store(out + o, f32x4.add(v128.load(out + o), g));
        v128.store(out + cb + o, madd(v128.load(out + cb + o), g, f32x4.sub(v128.load(x + off + o), v128.load(mean + o))));
      }
    } else {
      for (let o: usize = 0; o < cb; o += 4) {
        const g = gradMasked(dy + off + o, y + off + o, relu);
        store<f32>(out + o, load<f32>(out + o) + g);
        store<f32>(out + cb + o, load<f32>(out + cb + o) + g * (load<f32>(x + off + o) - load<f32>(mean + o)));
      }
    }
  }
}

/**
 * dx = g·a + (x - mean)·k1 + k2 per channel, g as in bnBackwardSums; dres = g where dres != 0.
 */
export function bnBackward(dy: usize, y: usize, x: usize, mean: usize, a: usize, k1: usize, k2: usize, dx: usize, dres: usize, C: i32, relu: i32, m0: i32, m1: i32): void {
  const cb = <usize>C << 2;
  const vec = (C & 3) == 0;
  for (let m = m0; m < m1; m++) {
    const off = <usize>m * cb;
    if (vec) {
      for (let o: usize = 0; o < cb; o += 16) {
        const g = gradMasked4(dy + off + o, y + off + o, relu);
        if (dres) v128.store(dres + off + o, g);
        const xc = f32x4.sub(v128.load(x + off + o), v128.load(mean + o));
        v128.store(dx + off + o, madd(madd(v128.load(k2 + o), xc, v128.load(k1 + o)), g, v128.load(a + o)));
      }
    } else {
      for (let o: usize = 0; o < cb; o += 4) {
        const g = gradMasked(dy + off + o, y + off + o, relu);
        if (dres) store<f32>(dres + off + o, g);
        const xc = load<f32>(x + off + o) - load<f32>(mean + o);
        store<f32>(dx + off + o, load<f32>(k2 + o) + xc * load<f32>(k1 + o) + g * load<f32>(a + o));
      }
    }
  }
}

/**
 * Gradient of a 2x2 stride-2 max pool of NHWC x (H x W x C, output Ho x Wo, windows clipped at the
 * edges) for images [n0, n1): each output's gradient goes to the first maximum of its window
 * (row-major, as tfjs's MaxPoolGrad); every other dx is 0.
 */
export function maxPool2Grad(x: usize, dy: usize, dx: usize, H: i32, W: i32, C: i32, Ho: i32, Wo: i32, n0: i32, n1: i32): void {
  const cb = <usize>C << 2;
  const vb = <usize>(C & ~3) << 2;
  memory.fill(dx + <usize>(n0 * H * W) * cb, 0, <usize>((n1 - n0) * H * W) * cb);
  for (let n = n0; n < n1; n++) {
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        const g = dy + <usize>((n * Ho + oy) * Wo + ox) * cb;
        const y0 = oy * 2, x0 = ox * 2;
        const dy1 = y0 + 1 < H, dx1 = x0 + 1 < W;
        // the window's positions in row-major order (a clipped one repeats the first: never "greater")
        const p0 = <usize>((n * H + y0) * W + x0) * cb;
        const p1 = dx1 ? p0 + cb : p0;
        const p2 = dy1 ? p0 + <usize>W * cb : p0;
        const p3 = dy1 && dx1 ? p2 + cb : p0;
        // four channels at a time: the first maximum's index per lane, then the gradient to it
        for (let c: usize = 0; c < vb; c += 16) {
          let bv = v128.load(x + p0 + c);
          let bi = i32x4.splat(0);
          let v = v128.load(x + p1 + c), gt = f32x4.gt(v, bv);
          bv = v128.bitselect(v, bv, gt); bi = v128.bitselect(i32x4.splat(1), bi, gt);
          v = v128.load(x + p2 + c); gt = f32x4.gt(v, bv);
          bv = v128.bitselect(v, bv, gt); bi = v128.bitselect(i32x4.splat(2), bi, gt);
          v = v128.load(x + p3 + c); gt = f32x4.gt(v, bv);
          bi = v128.bitselect(i32x4.splat(3), bi, gt);
          const gv = v128.load(g + c);
          // a clipped position aliases p0: its lanes (never chosen) must not overwrite p0's
          v128.store(dx + p0 + c, v128.and(gv, i32x4.eq(bi, i32x4.splat(0))));
          if (p1 != p0) v128.store(dx + p1 + c, v128.and(gv, i32x4.eq(bi, i32x4.splat(1))));
          if (p2 != p0) v128.store(dx + p2 + c, v128.and(gv, i32x4.eq(bi, i32x4.splat(2))));
          if (p3 != p0) v128.store(dx + p3 + c, v128.and(gv, i32x4.eq(bi, i32x4.splat(3))));
        }
        for (let c: usize = vb; c < cb; c += 4) {
          let best = p0 + c;
          let bv = load<f32>(x + best);
          for (let yy = y0; yy < min(y0 + 2, H); yy++) {
            for (let xx = x0; xx < min(x0 + 2, W); xx++) {
              const p = <usize>((n * H + yy) * W + xx) * cb + c;
              const v = load<f32>(x + p);
              if (v > bv) { bv = v; best = p; }
            }
          }
          store<f32>(dx + best, load<f32>(dx + best) + load<f32>(g + c));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dense products (the masked format's convolutions, the attention's 64 x 64 per head): rows of C
// from rows of B picked by an offset table, 4 rows x 8 columns of C in registers (8 accumulators:
// wider blocks spilled in V8 and ran at about half the speed). Column blocks are the outer loop,
// so a block's K rows of B (8 floats each) stay in L1 while every row of A passes over them.

/**
 * For rows r in [r0, r1) and columns p in [p0, p1): C[r·cs + p] = Σ_{k < K} A(r, k) · B[boff[k] + p],
 * A(r, k) at A[r·ars + k·aks] (strides and offsets in floats; any A layout, e.g. transposed).
 * Summed in k order, one product per step, whatever the split of rows or columns.
 */
/** Stores (or, with acc, adds) four lanes at c. */
@inline function put(c: usize, v: v128, acc: i32): void {
  v128.store(c, acc ? f32x4.add(v128.load(c), v) : v);
}

export function denseRows(A: usize, ars: i32, aks: i32, B: usize, boff: usize, K: i32, C: usize, cs: i32, r0: i32, r1: i32, p0: i32, p1: i32, acc: i32): void {
  const ar = <usize>ars << 2, ak = <usize>aks << 2, cb = <usize>cs << 2;
  let j = p0;
  for (; j + 8 <= p1; j += 8) {
    const bj = B + (<usize>j << 2);
    let r = r0;
    for (; r + 4 <= r1; r += 4) {
      let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      let ap = A + <usize>r * ar;
      for (let k: usize = 0; k < <usize>K; k++) {
        const br = bj + (<usize>load<i32>(boff + (k << 2)) << 2);
        const b0 = v128.load(br), b1 = v128.load(br, 16);
        let a = v128.load32_splat(ap); c00 = madd(c00, b0, a); c01 = madd(c01, b1, a);
        a = v128.load32_splat(ap + ar); c10 = madd(c10, b0, a); c11 = madd(c11, b1, a);
        a = v128.load32_splat(ap + 2 * ar); c20 = madd(c20, b0, a); c21 = madd(c21, b1, a);
        a = v128.load32_splat(ap + 3 * ar); c30 = madd(c30, b0, a); c31 = madd(c31, b1, a);
        ap += ak;
      }
      const cr = C + <usize>r * cb + (<usize>j << 2);
      put(cr, c00, acc); put(cr + 16, c01, acc);
      put(cr + cb, c10, acc); put(cr + cb + 16, c11, acc);
      put(cr + 2 * cb, c20, acc); put(cr + 2 * cb + 16, c21, acc);
      put(cr + 3 * cb, c30, acc); put(cr + 3 * cb + 16, c31, acc);
    }
    for (; r < r1; r++) {
      let c0 = f32x4.splat(0), c1 = c0;
      let ap = A + <usize>r * ar;
      for (let k: usize = 0; k < <usize>K; k++) {
        const br = bj + (<usize>load<i32>(boff + (k << 2)) << 2);
        const a = v128.load32_splat(ap);
        c0 = madd(c0, v128.load(br), a); c1 = madd(c1, v128.load(br, 16), a);
        ap += ak;
      }
      const cr = C + <usize>r * cb + (<usize>j << 2);
      put(cr, c0, acc); put(cr + 16, c1, acc);
    }
  }
  // the last columns: the same sums, one lane at a time
  for (; j < p1; j++) {
    const bj = B + (<usize>j << 2);
    for (let r = r0; r < r1; r++) {
      let c = f32x4.splat(0);
      let ap = A + <usize>r * ar;
      for (let k: usize = 0; k < <usize>K; k++) {
        c = madd(c, v128.load32_splat(bj + (<usize>load<i32>(boff + (k << 2)) << 2)), v128.load32_splat(ap));
        ap += ak;
      }
      const cr = C + <usize>r * cb + (<usize>j << 2);
      store<f32>(cr, acc ? load<f32>(cr) + f32x4.extract_lane(c, 0) : f32x4.extract_lane(c, 0));
    }
  }
}

/** One row's two dot products of a denseDots block (vector part s0, s1, then the tail positions), written or added. */
@inline function storeDots(c: usize, jb: usize, s0: v128, s1: v128, ap: usize, b0p: usize, b1p: usize, nv: usize, nb: usize, first: bool, two: bool): void {
  let t0 = hsum(s0), t1 = hsum(s1);
  for (let o = nv; o < nb; o += 4) { const av = load<f32>(ap + o); t0 += av * load<f32>(b0p + o); t1 += av * load<f32>(b1p + o); }
  store<f32>(c, first ? t0 : load<f32>(c) + t0);
  if (two) store<f32>(c + jb, first ? t1 : load<f32>(c + jb) + t1);
}

const DOTS_BLOCK: i32 = 1024; // positions per block of denseDots (a block of every row stays in L2)

/**
 * For columns j in [j0, j1) and every row r < rows: C[r·crs + j·cjs] = Σ_p A[aoff[r] + p] · B[boff[j] + p]
 * (offsets in floats), p over the nspans position spans [start, end) at spans (int32 pairs): all
 * pairs of an offset dot product, as partial sums over blocks of DOTS_BLOCK positions of each
 * span added in span and block order (the masked format's conv weight gradient).
 */
export function denseDots(A: usize, aoff: usize, rows: i32, B: usize, boff: usize, C: usize, crs: i32, cjs: i32, spans: usize, nspans: i32, j0: i32, j1: i32): void {
  const rb = <usize>crs << 2, jb = <usize>cjs << 2;
  for (let sp = 0; sp < nspans; sp++) {
    const start = load<i32>(spans + (<usize>sp << 3)), end = load<i32>(spans + (<usize>sp << 3), 4);
    for (let blk = start; blk < end; blk += DOTS_BLOCK) {
      const e = min(blk + DOTS_BLOCK, end);
      const nv = <usize>((e - blk) & ~3) << 2, nb = <usize>(e - blk) << 2;
      const first = sp == 0 && blk == start;
      const bo = <usize>blk << 2;
      let j = j0;
      for (; j < j1; j += 2) {
        const two = j + 1 < j1;
        const b0p = B + (<usize>load<i32>(boff + (<usize>j << 2)) << 2) + bo;
        const b1p = two ? B + (<usize>load<i32>(boff + (<usize>j << 2), 4) << 2) + bo : b0p;
        let r = 0;
        for (; r < rows; r += 4) {
          const nr = min(4, rows - r);
          const a0p = A + (<usize>load<i32>(aoff + (<usize>r << 2)) << 2) + bo;
          const a1p = nr > 1 ? A + (<usize>load<i32>(aoff + (<usize>r << 2), 4) << 2) + bo : a0p;
          const a2p = nr > 2 ? A + (<usize>load<i32>(aoff + (<usize>r << 2), 8) << 2) + bo : a0p;
          const a3p = nr > 3 ? A + (<usize>load<i32>(aoff + (<usize>r << 2), 12) << 2) + bo : a0p;
          let s00 = f32x4.splat(0), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
          for (let o: usize = 0; o < nv; o += 16) {
            const b0 = v128.load(b0p + o), b1 = v128.load(b1p + o);
            let a = v128.load(a0p + o); s00 = madd(s00, a, b0); s01 = madd(s01, a, b1);
            a = v128.load(a1p + o); s10 = madd(s10, a, b0); s11 = madd(s11, a, b1);
            a = v128.load(a2p + o); s20 = madd(s20, a, b0); s21 = madd(s21, a, b1);
            a = v128.load(a3p + o); s30 = madd(s30, a, b0); s31 = madd(s31, a, b1);
          }
          const c0 = C + <usize>r * rb + <usize>j * jb;
          storeDots(c0, jb, s00, s01, a0p, b0p, b1p, nv, nb, first, two);
          if (nr > 1) storeDots(c0 + rb, jb, s10, s11, a1p, b0p, b1p, nv, nb, first, two);
          if (nr > 2) storeDots(c0 + 2 * rb, jb, s20, s21, a2p, b0p, b1p, nv, nb, first, two);
          if (nr > 3) storeDots(c0 + 3 * rb, jb, s30, s31, a3p, b0p, b1p, nv, nb, first, two);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Layer norm over the last axis of M rows of D (PyTorch nn.LayerNorm), rows [m0, m1) per call.

/** y = (x - mean)·invstd·gamma + beta per row; the row's mean and invstd are written out. */
export function lnForward(x: usize, y: usize, gamma: usize, beta: usize, mean: usize, invstd: usize, D: i32, eps: f32, m0: i32, m1: i32): void {
  const db = <usize>D << 2;
  const vec = (D & 3) == 0;
  for (let m = m0; m < m1; m++) {
    const row = x + <usize>m * db, out = y + <usize>m * db;
    let s: f32 = 0;
    if (vec) { let a = f32x4.splat(0); for (let o: usize = 0; o < db; o += 16) a = f32x4.add(a, v128.load(row + o)); s = hsum(a); }
    else for (let o: usize = 0; o < db; o += 4) s += load<f32>(row + o);
    const mu = s / <f32>D;
    let q: f32 = 0;
    if (vec) {
      const mv = f32x4.splat(mu);
      let a = f32x4.splat(0);
      for (let o: usize = 0; o < db; o += 16) { const c = f32x4.sub(v128.load(row + o), mv); a = madd(a, c, c); }
      q = hsum(a);
    } else for (let o: usize = 0; o < db; o += 4) { const c = load<f32>(row + o) - mu; q += c * c; }
    const inv = <f32>1 / Mathf.sqrt(q / <f32>D + eps);
    store<f32>(mean + (<usize>m << 2), mu);
    store<f32>(invstd + (<usize>m << 2), inv);
    if (vec) {
      const mv = f32x4.splat(mu), iv = f32x4.splat(inv);
      for (let o: usize = 0; o < db; o += 16) {
        const h = f32x4.mul(f32x4.sub(v128.load(row + o), mv), iv);
        v128.store(out + o, madd(v128.load(beta + o), h, v128.load(gamma + o)));
      }
    } else for (let o: usize = 0; o < db; o += 4) store<f32>(out + o, (load<f32>(row + o) - mu) * inv * load<f32>(gamma + o) + load<f32>(beta + o));
  }
}

/**
 * Backward of lnForward for rows [m0, m1): dx = invstd·(g - mean(g) - xhat·mean(g·xhat)) with
 * g = dy·gamma and xhat = (x - mean)·invstd; partial[d] += dy·xhat (dgamma), partial[D + d] += dy (dbeta).
 */
export function lnBackward(dy: usize, x: usize, gamma: usize, mean: usize, invstd: usize, dx: usize, partial: usize, D: i32, m0: i32, m1: i32): void {
  const db = <usize>D << 2;
  memory.fill(partial, 0, db << 1);
  for (let m = m0; m < m1; m++) {
    const row = x + <usize>m * db, drow = dy + <usize>m * db, out = dx + <usize>m * db;
    const mu = load<f32>(mean + (<usize>m << 2)), inv = load<f32>(invstd + (<usize>m << 2));
    let sg: f32 = 0, sgx: f32 = 0;
    for (let o: usize = 0; o < db; o += 4) {
      const d = load<f32>(drow + o);
      const h = (load<f32>(row + o) - mu) * inv;
      const g = d * load<f32>(gamma + o);
      sg += g; sgx += g * h;
      store<f32>(partial + o, load<f32>(partial + o) + d * h);
      store<f32>(partial + db + o, load<f32>(partial + db + o) + d);
    }
    const a = sg / <f32>D, b = sgx / <f32>D;
    for (let o: usize = 0; o < db; o += 4) {
      const h = (load<f32>(row + o) - mu) * inv;
      store<f32>(out + o, inv * (load<f32>(drow + o) * load<f32>(gamma + o) - a - h * b));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Exact GELU, 0.5·x·(1 + erf(x/√2)), elementwise over [i0, i1); erf as tfjs computes it
// (Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7), four lanes at a time. A tail
// element runs through the same vector code in one lane, so every element's result is the same
// wherever the threads' ranges are cut.

/**
 * e^x for four lanes (Cephes expf: x = n·ln2 + r, |r| <= ln2/2, a degree-6 polynomial in r, times
 * 2^n built in the exponent bits); relative error about 2e-7. Lanes below -87.3 give ~1e-38.
 */
@inline function vexp(x: v128): v128 {
  const c = f32x4.min(f32x4.max(x, f32x4.splat(-87.33654)), f32x4.splat(88.37626));
  const n = f32x4.nearest(f32x4.mul(c, f32x4.splat(1.44269504088896341)));
  const r = f32x4.sub(f32x4.sub(c, f32x4.mul(n, f32x4.splat(0.693359375))), f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = madd(f32x4.splat(1.3981999507e-3), p, r);
  p = madd(f32x4.splat(8.3334519073e-3), p, r);
  p = madd(f32x4.splat(4.1665795894e-2), p, r);
  p = madd(f32x4.splat(1.6666665459e-1), p, r);
  p = madd(f32x4.splat(5.0000001201e-1), p, r);
  p = f32x4.add(madd(r, p, f32x4.mul(r, r)), f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, pow2);
}

@inline function verf(v: v128): v128 {
  const sign = v128.and(v, i32x4.splat(0x80000000));
  const a = f32x4.abs(v);
  const one = f32x4.splat(1);
  const t = f32x4.div(one, madd(one, f32x4.splat(0.3275911), a));
  let poly = f32x4.splat(1.061405429);
  poly = madd(f32x4.splat(-1.453152027), poly, t);
  poly = madd(f32x4.splat(1.421413741), poly, t);
  poly = madd(f32x4.splat(-0.284496736), poly, t);
  poly = madd(f32x4.splat(0.254829592), poly, t);
  poly = f32x4.mul(poly, t);
  const e = vexp(f32x4.neg(f32x4.mul(a, a)));
  return v128.or(f32x4.sub(one, f32x4.mul(poly, e)), sign);
}

/** mode 0: gelu(x); mode 1: dy · gelu'(x). */
@inline function vgelu(v: v128, d: v128, mode: i32): v128 {
  const half = f32x4.splat(0.5);
  const cdf = f32x4.mul(half, f32x4.add(f32x4.splat(1), verf(f32x4.mul(v, f32x4.splat(0.70710678118654752)))));
  if (mode == 0) return f32x4.mul(v, cdf);
  const pdf = f32x4.mul(vexp(f32x4.mul(f32x4.splat(-0.5), f32x4.mul(v, v))), f32x4.splat(0.3989422804014327));
  return f32x4.mul(d, madd(cdf, v, pdf));
}

/** mode 0: y = gelu(x); mode 1: y = dy · gelu'(x) (dy at `dy`). */
export function gelu(x: usize, dy: usize, y: usize, mode: i32, i0: i32, i1: i32): void {
  let i = <usize>i0;
  const end = <usize>i1;
  for (; i + 4 <= end; i += 4) {
    const o = i << 2;
    v128.store(y + o, vgelu(v128.load(x + o), mode ? v128.load(dy + o) : f32x4.splat(0), mode));
  }
  for (; i < end; i++) {
    const o = i << 2;
    const r = vgelu(f32x4.splat(load<f32>(x + o)), f32x4.splat(mode ? load<f32>(dy + o) : 0), mode);
    store<f32>(y + o, f32x4.extract_lane(r, 0));
  }
}

/**
 * C = op(A) · op(B), all row-major, C is M x N; op(A) is M x K (A stored M x K, or K x M when
 * transA), op(B) is K x N (B stored K x N, or N x K when transB: transposed first into `scratch`).
 * scratch: K·N + K floats.
 */
function gemm(A: usize, Bi: usize, Cm: usize, M: i32, K: i32, N: i32, transA: i32, transB: i32, scratch: usize): void {
  let B = Bi;
  if (transB) {
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) store<f32>(scratch + (<usize>(k * N + n) << 2), load<f32>(Bi + (<usize>(n * K + k) << 2)));
    B = scratch;
  }
  const boff = scratch + (<usize>(K * N) << 2);
  for (let k = 0; k < K; k++) store<i32>(boff + (<usize>k << 2), k * N);
  denseRows(A, transA ? 1 : K, transA ? M : 1, B, boff, K, Cm, N, 0, M, 0, N, 0);
}

// ---------------------------------------------------------------------------------------------
// Multi-head attention, fused per head: q, k, v of head h of sample b are read straight from the
// packed projections qkv [N·T, 3·H·D] (features ordered q|k|v, head, d), the head's T x T
// attention is kept for the backward pass, and the results are written token-major, so no
// split/merge copies and no softmax ops outside. Heads [i0, i1) (i = b·H + h) per call; each
// call has its own scratch of 8·T·D + T·T + T + D floats. A head's result does not depend on
// which call computes it.

/** Copies the T rows of D floats at src (row stride `stride` floats) to dst (contiguous), or back. */
@inline function copyRows(src: usize, stride: i32, dst: usize, T: i32, D: i32, toRows: bool): void {
  const db = <usize>D << 2, sb = <usize>stride << 2;
  for (let t = 0; t < T; t++) {
    const a = src + <usize>t * sb, b = dst + <usize>t * db;
    if (toRows) memory.copy(a, b, db); else memory.copy(b, a, db);
  }
}

/** out (token-major [N·T, H·D]) and attn ([N·H, T, T], the softmax) of heads [i0, i1). */
export function attnForward(qkv: usize, out: usize, attn: usize, T: i32, H: i32, D: i32, scale: f32, i0: i32, i1: i32, scratch: usize): void {
  const td = <usize>(T * D) << 2;
  const q = scratch, k = q + td, v = k + td, tr = v + td;
  const row = 3 * H * D, orow = H * D;
  for (let i = i0; i < i1; i++) {
    const b = i / H, h = i % H;
    const base = qkv + (<usize>(b * T * row) << 2);
    copyRows(base + (<usize>(h * D) << 2), row, q, T, D, false);
    copyRows(base + (<usize>((H + h) * D) << 2), row, k, T, D, false);
    copyRows(base + (<usize>((2 * H + h) * D) << 2), row, v, T, D, false);
    const S = attn + (<usize>i * <usize>(T * T) << 2);
    gemm(q, k, S, T, D, T, 0, 1, tr);
    for (let r = 0; r < T; r++) softmaxRow(S + (<usize>(r * T) << 2), T, scale);
    gemm(S, v, q, T, T, D, 0, 0, tr); // the head's output, into q's place
    copyRows(out + (<usize>(b * T * orow + h * D) << 2), orow, q, T, D, true);
  }
}

/** y = softmax(scale · y) over one row of n, as tfjs: exp(x - max) / sum. */
@inline function softmaxRow(y: usize, n: i32, scale: f32): void {
  const nb = <usize>n << 2;
  const vs = f32x4.splat(scale);
  let o: usize = 0;
  let mx: f32 = -Infinity;
  for (; o + 16 <= nb; o += 16) {
    const a = f32x4.mul(v128.load(y + o), vs);
    v128.store(y + o, a);
    mx = max(mx, f32x4.extract_lane(a, 0)); mx = max(mx, f32x4.extract_lane(a, 1));
    mx = max(mx, f32x4.extract_lane(a, 2)); mx = max(mx, f32x4.extract_lane(a, 3));
  }
  for (; o < nb; o += 4) { const a = load<f32>(y + o) * scale; store<f32>(y + o, a); mx = max(mx, a); }
  const vm = f32x4.splat(mx);
  let sum: f32 = 0;
  o = 0;
  for (; o + 16 <= nb; o += 16) {
    const e = vexp(f32x4.sub(v128.load(y + o), vm));
    v128.store(y + o, e);
    sum += hsum(e);
  }
  for (; o < nb; o += 4) {
    const e = f32x4.extract_lane(vexp(f32x4.splat(load<f32>(y + o) - mx)), 0);
    store<f32>(y + o, e);
    sum += e;
  }
  const vsum = f32x4.splat(sum);
  o = 0;
  for (; o + 16 <= nb; o += 16) v128.store(y + o, f32x4.div(v128.load(y + o), vsum));
  for (; o < nb; o += 4) store<f32>(y + o, load<f32>(y + o) / sum);
}

/**
 * dqkv (token-major, q|k|v) of heads [i0, i1) from dy (token-major [N·T, H·D]), the forward's
 * qkv and attn: dv = Aᵀ·dy, dA = dy·vᵀ, dS = A ⊙ (dA − rowsum(dA ⊙ A)) · scale, dq = dS·k, dk = dSᵀ·q.
 */
export function attnBackward(qkv: usize, attn: usize, dy: usize, dqkv: usize, T: i32, H: i32, D: i32, scale: f32, i0: i32, i1: i32, scratch: usize): void {
  const td = <usize>(T * D) << 2, tb = <usize>T << 2;
  const q = scratch, k = q + td, v = k + td, g = v + td, dq = g + td, dk = dq + td, dv = dk + td, dS = dv + td, tr = dS + (<usize>(T * T) << 2);
  const row = 3 * H * D, orow = H * D;
  for (let i = i0; i < i1; i++) {
    const b = i / H, h = i % H;
    const base = qkv + (<usize>(b * T * row) << 2), dbase = dqkv + (<usize>(b * T * row) << 2);
    copyRows(base + (<usize>(h * D) << 2), row, q, T, D, false);
    copyRows(base + (<usize>((H + h) * D) << 2), row, k, T, D, false);
    copyRows(base + (<usize>((2 * H + h) * D) << 2), row, v, T, D, false);
    copyRows(dy + (<usize>(b * T * orow + h * D) << 2), orow, g, T, D, false);
    const A = attn + (<usize>i * <usize>(T * T) << 2);
    gemm(A, g, dv, T, T, D, 1, 0, tr);
    gemm(g, v, dS, T, D, T, 0, 1, tr);
    const vscale = f32x4.splat(scale);
    for (let r = 0; r < T; r++) {
      const ar = A + <usize>r * tb, dr = dS + <usize>r * tb;
      let dot: f32 = 0;
      for (let c: usize = 0; c < tb; c += 4) dot += load<f32>(dr + c) * load<f32>(ar + c);
      const vd = f32x4.splat(dot);
      let c: usize = 0;
      for (; c + 16 <= tb; c += 16) v128.store(dr + c, f32x4.mul(f32x4.mul(v128.load(ar + c), f32x4.sub(v128.load(dr + c), vd)), vscale));
      for (; c < tb; c += 4) store<f32>(dr + c, load<f32>(ar + c) * (load<f32>(dr + c) - dot) * scale);
    }
    gemm(dS, k, dq, T, T, D, 0, 0, tr);
    gemm(dS, q, dk, T, T, D, 1, 0, tr);
    copyRows(dbase + (<usize>(h * D) << 2), row, dq, T, D, true);
    copyRows(dbase + (<usize>((H + h) * D) << 2), row, dk, T, D, true);
    copyRows(dbase + (<usize>((2 * H + h) * D) << 2), row, dv, T, D, true);
  }
}

// ---------------------------------------------------------------------------------------------
// The elementwise parts of a csr MLP step, on feature-major activations (n x B), so that a chain of
// csr linear layers keeps its activations in the kernels' layout from the first layer to the last.
// Each gives the bits the tfjs ops they replace give (tf.relu, its gradient dy·step(x), the bias
// add of the csr op, its row sums in float64).

/** y[r, :] += bias[r] (skipped where bias[r] is ±0, as the JS loop did), then y = y > 0 ? y : +0 when relu; rows [r0, r1). */
export function biasRelu(y: usize, bias: usize, batch: i32, relu: i32, r0: i32, r1: i32): void {
  const nb = <usize>batch << 2;
  const zero = f32x4.splat(0);
  for (let r = <usize>r0; r < <usize>r1; r++) {
    const p = y + r * nb;
    const v = load<f32>(bias + (r << 2));
    const vv = f32x4.splat(v);
    const add = v != 0;
    let o: usize = 0;
    for (; o + 16 <= nb; o += 16) {
      let t = v128.load(p + o);
      if (add) t = f32x4.add(t, vv);
      if (relu) t = v128.and(t, f32x4.gt(t, zero));
      v128.store(p + o, t);
    }
    for (; o < nb; o += 4) {
      let t = load<f32>(p + o);
      if (add) t += v;
      if (relu) t = t > 0 ? t : 0;
      store<f32>(p + o, t);
    }
  }
}

/** g[i] = g[i] · (x[i] > 0 ? 1 : 0) for i in [i0, i1): the ReLU's gradient, as tfjs forms it (a negative g times 0 is -0). */
export function reluGrad(g: usize, x: usize, i0: i32, i1: i32): void {
  const zero = f32x4.splat(0);
  let i = <usize>i0 << 2;
  const e = <usize>i1 << 2;
  for (; i + 16 <= e; i += 16) {
    const t = v128.load(g + i);
    v128.store(g + i, v128.bitselect(t, f32x4.mul(t, zero), f32x4.gt(v128.load(x + i), zero)));
  }
  for (; i < e; i += 4) {
    const t = load<f32>(g + i);
    store<f32>(g + i, load<f32>(x + i) > 0 ? t : t * 0);
  }
}

/**
 * out[r] = Σ_b src[r, b] summed in float64 in batch order, rounded once (the bias gradient); rows
 * [r0, r1). Two rows share a float64x2 accumulator (one lane each, so each row's sum is the same
 * sequence of additions) and two such pairs run side by side, to hide the latency of the chain.
 */
export function rowSums64(src: usize, out: usize, batch: i32, r0: i32, r1: i32): void {
  const nb = <usize>batch << 2;
  let r = <usize>r0;
  for (; r + 4 <= <usize>r1; r += 4) {
    const p = src + r * nb;
    let s01 = f64x2.splat(0), s23 = f64x2.splat(0);
    for (let o: usize = 0; o < nb; o += 4) {
      s01 = f64x2.add(s01, f64x2(<f64>load<f32>(p + o), <f64>load<f32>(p + nb + o)));
      s23 = f64x2.add(s23, f64x2(<f64>load<f32>(p + 2 * nb + o), <f64>load<f32>(p + 3 * nb + o)));
    }
    store<f32>(out + (r << 2), <f32>f64x2.extract_lane(s01, 0));
    store<f32>(out + (r << 2), <f32>f64x2.extract_lane(s01, 1), 4);
    store<f32>(out + (r << 2), <f32>f64x2.extract_lane(s23, 0), 8);
    store<f32>(out + (r << 2), <f32>f64x2.extract_lane(s23, 1), 12);
  }
  for (; r < <usize>r1; r++) {
    const p = src + r * nb;
    let s: f64 = 0;
    for (let o: usize = 0; o < nb; o += 4) s += <f64>load<f32>(p + o);
    store<f32>(out + (r << 2), <f32>s);
  }
}

/**
 * SGD with PyTorch's semantics on elements [i0, i1), in place: g' = g + wd·w (flags & 1),
 * v = momentum·v + g' (flags & 2, else v is not touched and g' is the step), w -= lr·step. Every
 * operation is one float32 rounding (no fused multiply-add), so the result is the same as the
 * float32 JavaScript loop it replaces, bit for bit. lr, momentum and wd come as float32 bits.
 */
export function sgdUpdate(w: usize, g: usize, v: usize, i0: i32, i1: i32, lrBits: i32, momentumBits: i32, wdBits: i32, flags: i32): void {
  const lr = reinterpret<f32>(lrBits), momentum = reinterpret<f32>(momentumBits), wd = reinterpret<f32>(wdBits);
  const decay = (flags & 1) !== 0, withMomentum = (flags & 2) !== 0;
  const lr4 = f32x4.splat(lr), m4 = f32x4.splat(momentum), wd4 = f32x4.splat(wd);
  let i = <usize>i0 << 2;
  const e = <usize>i1 << 2;
  for (; i + 16 <= e; i += 16) {
    const wi = v128.load(w + i);
    let s = v128.load(g + i);
    if (decay) s = f32x4.add(s, f32x4.mul(wi, wd4));
    if (withMomentum) {
      s = f32x4.add(f32x4.mul(v128.load(v + i), m4), s);
      v128.store(v + i, s);
    }
    v128.store(w + i, f32x4.sub(wi, f32x4.mul(s, lr4)));
  }
  for (; i < e; i += 4) {
    const wi = load<f32>(w + i);
    let s = load<f32>(g + i);
    if (decay) s = s + wi * wd;
    if (withMomentum) {
      s = load<f32>(v + i) * momentum + s;
      store<f32>(v + i, s);
    }
    store<f32>(w + i, wi - s * lr);
  }
}
