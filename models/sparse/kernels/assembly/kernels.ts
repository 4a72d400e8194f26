// Sparse kernels for the always-sparse `csr` format, compiled by ../build.mjs to WebAssembly with
// SIMD (and, in a second build, relaxed SIMD for fused multiply-add).
//
// Every pointer is a byte offset into the linear memory, which is imported and shared between the
// main thread and the worker threads (see ../index.ts). Nothing here allocates. Each kernel takes a
// range of the work (rows, batch columns or pairs) so that callers can split it between threads.
//
// Activations are feature-major: a matrix of n features for a batch of B is stored n x B row-major,
// so a feature's B values are contiguous, and one nonzero of the sparse matrix multiplies a whole
// contiguous row. Offsets are computed as row * stride with stride = B * 4 bytes, never as a flat
// row * cols index of the sparse matrix.

/** acc + a * b (fused where the build has relaxed SIMD). */
@inline function madd(acc: v128, a: v128, b: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

@inline function hsum(a: v128): f32 {
  const s = f32x4.add(a, v128.shuffle<f32>(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** One output row, 64 batch columns: y[0..64) = Σ_k vals[k] · x[colIdx[k]·stride + 0..64). */
@inline function spmmRow16(k0: usize, k1: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0);
  let a5 = f32x4.splat(0);
  let a6 = f32x4.splat(0);
  let a7 = f32x4.splat(0);
  let a8 = f32x4.splat(0);
  let a9 = f32x4.splat(0);
  let a10 = f32x4.splat(0);
  let a11 = f32x4.splat(0);
  let a12 = f32x4.splat(0);
  let a13 = f32x4.splat(0);
  let a14 = f32x4.splat(0);
  let a15 = f32x4.splat(0);
  for (let k = k0; k < k1; k++) {
    const p = x + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    a0 = madd(a0, v128.load(p, 0), v);
    a1 = madd(a1, v128.load(p, 16), v);
    a2 = madd(a2, v128.load(p, 32), v);
    a3 = madd(a3, v128.load(p, 48), v);
    a4 = madd(a4, v128.load(p, 64), v);
    a5 = madd(a5, v128.load(p, 80), v);
    a6 = madd(a6, v128.load(p, 96), v);
    a7 = madd(a7, v128.load(p, 112), v);
    a8 = madd(a8, v128.load(p, 128), v);
    a9 = madd(a9, v128.load(p, 144), v);
    a10 = madd(a10, v128.load(p, 160), v);
    a11 = madd(a11, v128.load(p, 176), v);
    a12 = madd(a12, v128.load(p, 192), v);
    a13 = madd(a13, v128.load(p, 208), v);
    a14 = madd(a14, v128.load(p, 224), v);
    a15 = madd(a15, v128.load(p, 240), v);
  }
  v128.store(y, a0, 0);
  v128.store(y, a1, 16);
  v128.store(y, a2, 32);
  v128.store(y, a3, 48);
  v128.store(y, a4, 64);
  v128.store(y, a5, 80);
  v128.store(y, a6, 96);
  v128.store(y, a7, 112);
  v128.store(y, a8, 128);
  v128.store(y, a9, 144);
  v128.store(y, a10, 160);
  v128.store(y, a11, 176);
  v128.store(y, a12, 192);
  v128.store(y, a13, 208);
  v128.store(y, a14, 224);
  v128.store(y, a15, 240);
}

/** One output row, 32 batch columns: y[0..32) = Σ_k vals[k] · x[colIdx[k]·stride + 0..32). */
@inline function spmmRow8(k0: usize, k1: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0);
  let a5 = f32x4.splat(0);
  let a6 = f32x4.splat(0);
  let a7 = f32x4.splat(0);
  for (let k = k0; k < k1; k++) {
    const p = x + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    a0 = madd(a0, v128.load(p, 0), v);
    a1 = madd(a1, v128.load(p, 16), v);
    a2 = madd(a2, v128.load(p, 32), v);
    a3 = madd(a3, v128.load(p, 48), v);
    a4 = madd(a4, v128.load(p, 64), v);
    a5 = madd(a5, v128.load(p, 80), v);
    a6 = madd(a6, v128.load(p, 96), v);
    a7 = madd(a7, v128.load(p, 112), v);
  }
  v128.store(y, a0, 0);
  v128.store(y, a1, 16);
  v128.store(y, a2, 32);
  v128.store(y, a3, 48);
  v128.store(y, a4, 64);
  v128.store(y, a5, 80);
  v128.store(y, a6, 96);
  v128.store(y, a7, 112);
}

/** One output row, 16 batch columns: y[0..16) = Σ_k vals[k] · x[colIdx[k]·stride + 0..16). */
@inline function spmmRow4(k0: usize, k1: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  for (let k = k0; k < k1; k++) {
    const p = x + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    a0 = madd(a0, v128.load(p, 0), v);
    a1 = madd(a1, v128.load(p, 16), v);
    a2 = madd(a2, v128.load(p, 32), v);
    a3 = madd(a3, v128.load(p, 48), v);
  }
  v128.store(y, a0, 0);
  v128.store(y, a1, 16);
  v128.store(y, a2, 32);
  v128.store(y, a3, 48);
}

/** One output row, 4 batch columns: y[0..4) = Σ_k vals[k] · x[colIdx[k]·stride + 0..4). */
@inline function spmmRow1(k0: usize, k1: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize): void {
  let a0 = f32x4.splat(0);
  for (let k = k0; k < k1; k++) {
    const p = x + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    a0 = madd(a0, v128.load(p, 0), v);
  }
  v128.store(y, a0, 0);
}

/** Scatter one row of dy (64 batch columns) into the rows of dx named by the row's nonzeros. */
@inline function spmmTRow16(k0: usize, k1: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize): void {
  const d0 = v128.load(d, 0);
  const d1 = v128.load(d, 16);
  const d2 = v128.load(d, 32);
  const d3 = v128.load(d, 48);
  const d4 = v128.load(d, 64);
  const d5 = v128.load(d, 80);
  const d6 = v128.load(d, 96);
  const d7 = v128.load(d, 112);
  const d8 = v128.load(d, 128);
  const d9 = v128.load(d, 144);
  const d10 = v128.load(d, 160);
  const d11 = v128.load(d, 176);
  const d12 = v128.load(d, 192);
  const d13 = v128.load(d, 208);
  const d14 = v128.load(d, 224);
  const d15 = v128.load(d, 240);
  for (let k = k0; k < k1; k++) {
    const p = dx + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    v128.store(p, madd(v128.load(p, 0), d0, v), 0);
    v128.store(p, madd(v128.load(p, 16), d1, v), 16);
    v128.store(p, madd(v128.load(p, 32), d2, v), 32);
    v128.store(p, madd(v128.load(p, 48), d3, v), 48);
    v128.store(p, madd(v128.load(p, 64), d4, v), 64);
    v128.store(p, madd(v128.load(p, 80), d5, v), 80);
    v128.store(p, madd(v128.load(p, 96), d6, v), 96);
    v128.store(p, madd(v128.load(p, 112), d7, v), 112);
    v128.store(p, madd(v128.load(p, 128), d8, v), 128);
    v128.store(p, madd(v128.load(p, 144), d9, v), 144);
    v128.store(p, madd(v128.load(p, 160), d10, v), 160);
    v128.store(p, madd(v128.load(p, 176), d11, v), 176);
    v128.store(p, madd(v128.load(p, 192), d12, v), 192);
    v128.store(p, madd(v128.load(p, 208), d13, v), 208);
    v128.store(p, madd(v128.load(p, 224), d14, v), 224);
    v128.store(p, madd(v128.load(p, 240), d15, v), 240);
  }
}

/** Scatter one row of dy (32 batch columns) into the rows of dx named by the row's nonzeros. */
@inline function spmmTRow8(k0: usize, k1: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize): void {
  const d0 = v128.load(d, 0);
  const d1 = v128.load(d, 16);
  const d2 = v128.load(d, 32);
  const d3 = v128.load(d, 48);
  const d4 = v128.load(d, 64);
  const d5 = v128.load(d, 80);
  const d6 = v128.load(d, 96);
  const d7 = v128.load(d, 112);
  for (let k = k0; k < k1; k++) {
    const p = dx + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    v128.store(p, madd(v128.load(p, 0), d0, v), 0);
    v128.store(p, madd(v128.load(p, 16), d1, v), 16);
    v128.store(p, madd(v128.load(p, 32), d2, v), 32);
    v128.store(p, madd(v128.load(p, 48), d3, v), 48);
    v128.store(p, madd(v128.load(p, 64), d4, v), 64);
    v128.store(p, madd(v128.load(p, 80), d5, v), 80);
    v128.store(p, madd(v128.load(p, 96), d6, v), 96);
    v128.store(p, madd(v128.load(p, 112), d7, v), 112);
  }
}

/** Scatter one row of dy (16 batch columns) into the rows of dx named by the row's nonzeros. */
@inline function spmmTRow4(k0: usize, k1: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize): void {
  const d0 = v128.load(d, 0);
  const d1 = v128.load(d, 16);
  const d2 = v128.load(d, 32);
  const d3 = v128.load(d, 48);
  for (let k = k0; k < k1; k++) {
    const p = dx + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    v128.store(p, madd(v128.load(p, 0), d0, v), 0);
    v128.store(p, madd(v128.load(p, 16), d1, v), 16);
    v128.store(p, madd(v128.load(p, 32), d2, v), 32);
    v128.store(p, madd(v128.load(p, 48), d3, v), 48);
  }
}

/** Scatter one row of dy (4 batch columns) into the rows of dx named by the row's nonzeros. */
@inline function spmmTRow1(k0: usize, k1: usize, colIdx: usize, vals: usize, d: usize, stride: usize, dx: usize): void {
  const d0 = v128.load(d, 0);
  for (let k = k0; k < k1; k++) {
    const p = dx + <usize>load<i32>(colIdx + (k << 2)) * stride;
    const v = v128.load32_splat(vals + (k << 2));
    v128.store(p, madd(v128.load(p, 0), d0, v), 0);
  }
}

/** One output row, batch columns [0, n) of a block narrower than 4: scalar. */
@inline function spmmRowScalar(k0: usize, k1: usize, colIdx: usize, vals: usize, x: usize, stride: usize, y: usize, n: usize): void {
  for (let j: usize = 0; j < n; j++) {
    let a: f32 = 0;
    for (let k = k0; k < k1; k++) {
      a += load<f32>(vals + (k << 2)) * load<f32>(x + <usize>load<i32>(colIdx + (k << 2)) * stride + (j << 2));
    }
    store<f32>(y + (j << 2), a);
  }
}

/**
 * y = A · x for rows [r0, r1) of A and batch columns [b0, b1).
 * A is CSR (rowPtr: rows+1 int32, colIdx/vals: nnz), x is cols x B, y is rows x B (feature-major).
 */
export function spmm(rowPtr: usize, colIdx: usize, vals: usize, x: usize, y: usize, batch: i32, r0: i32, r1: i32, b0: i32, b1: i32): void {
  const stride = <usize>batch << 2;
  for (let r = r0; r < r1; r++) {
    const k0 = <usize>load<i32>(rowPtr + (<usize>r << 2));
    const k1 = <usize>load<i32>(rowPtr + (<usize>r << 2), 4);
    const yr = y + <usize>r * stride;
    let b = <usize>b0;
    const e = <usize>b1;
    while (b + 64 <= e) { spmmRow16(k0, k1, colIdx, vals, x + (b << 2), stride, yr + (b << 2)); b += 64; }
    if (b + 32 <= e) { spmmRow8(k0, k1, colIdx, vals, x + (b << 2), stride, yr + (b << 2)); b += 32; }
    if (b + 16 <= e) { spmmRow4(k0, k1, colIdx, vals, x + (b << 2), stride, yr + (b << 2)); b += 16; }
    while (b + 4 <= e) { spmmRow1(k0, k1, colIdx, vals, x + (b << 2), stride, yr + (b << 2)); b += 4; }
    if (b < e) spmmRowScalar(k0, k1, colIdx, vals, x + (b << 2), stride, yr + (b << 2), e - b);
  }
}

/**
 * dx = Aᵀ · dy for batch columns [b0, b1) (all rows of A; threads split the batch, so no two
 * threads write the same element). dy is rows x B, dx is cols x B; dx[:, b0:b1] is overwritten.
 */
export function spmmT(rowPtr: usize, colIdx: usize, vals: usize, dy: usize, dx: usize, batch: i32, rows: i32, cols: i32, b0: i32, b1: i32): void {
  const stride = <usize>batch << 2;
  const bs = <usize>b0, e = <usize>b1;
  // zero the output block
  const w = (e - bs) << 2;
  for (let c: usize = 0; c < <usize>cols; c++) memory.fill(dx + c * stride + (bs << 2), 0, w);
  for (let r: usize = 0; r < <usize>rows; r++) {
    const k0 = <usize>load<i32>(rowPtr + (r << 2));
    const k1 = <usize>load<i32>(rowPtr + (r << 2), 4);
    if (k0 == k1) continue;
    const dr = dy + r * stride;
    let b = bs;
    while (b + 64 <= e) { spmmTRow16(k0, k1, colIdx, vals, dr + (b << 2), stride, dx + (b << 2)); b += 64; }
    if (b + 32 <= e) { spmmTRow8(k0, k1, colIdx, vals, dr + (b << 2), stride, dx + (b << 2)); b += 32; }
    if (b + 16 <= e) { spmmTRow4(k0, k1, colIdx, vals, dr + (b << 2), stride, dx + (b << 2)); b += 16; }
    while (b + 4 <= e) { spmmTRow1(k0, k1, colIdx, vals, dr + (b << 2), stride, dx + (b << 2)); b += 4; }
    for (; b < e; b++) {
      const d = load<f32>(dr + (b << 2));
      for (let k = k0; k < k1; k++) {
        const p = dx + <usize>load<i32>(colIdx + (k << 2)) * stride + (b << 2);
        store<f32>(p, load<f32>(p) + load<f32>(vals + (k << 2)) * d);
      }
    }
  }
}

/**
 * out[k] = Σ_i a[row[k]·B + i] · b[col[k]·B + i] for pairs k in [k0, k1).
 * a is (rows x B), b is (cols x B), both feature-major.
 */
export function sddmm(row: usize, col: usize, a: usize, b: usize, out: usize, batch: i32, k0: i32, k1: i32): void {
  const stride = <usize>batch << 2;
  const n = <usize>batch;
  for (let k = <usize>k0; k < <usize>k1; k++) {
    const pa = a + <usize>load<i32>(row + (k << 2)) * stride;
    const pb = b + <usize>load<i32>(col + (k << 2)) * stride;
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    let i: usize = 0;
    for (; i + 16 <= n; i += 16) {
      const o = i << 2;
      s0 = madd(s0, v128.load(pa + o, 0), v128.load(pb + o, 0));
      s1 = madd(s1, v128.load(pa + o, 16), v128.load(pb + o, 16));
      s2 = madd(s2, v128.load(pa + o, 32), v128.load(pb + o, 32));
      s3 = madd(s3, v128.load(pa + o, 48), v128.load(pb + o, 48));
    }
    for (; i + 4 <= n; i += 4) s0 = madd(s0, v128.load(pa + (i << 2)), v128.load(pb + (i << 2)));
    let s = hsum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
    for (; i < n; i++) s += load<f32>(pa + (i << 2)) * load<f32>(pb + (i << 2));
    store<f32>(out + (k << 2), s);
  }
}

/**
 * dst (cols x rows) = transpose of src (rows x cols), for the source columns [c0, c1), i.e. the
 * destination rows [c0, c1). 4 x 4 SIMD blocks inside 32 x 32 tiles; scalar edges.
 */
export function transpose(src: usize, dst: usize, rows: i32, cols: i32, c0: i32, c1: i32): void {
  const R = <usize>rows, C = <usize>cols;
  const ss = C << 2, ds = R << 2; // row strides in bytes
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
          const t1 = v128.shuffle<f32>(x2, x3, 0, 4, 1, 5);
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
