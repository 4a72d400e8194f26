/**
 * Seeded random numbers. Every random choice of a run flows from one seed through named forks,
 * so adding a consumer never shifts the stream another consumer sees.
 * Generator: xoshiro128** seeded by splitmix32.
 */
export class Rng {
  private s0: number; private s1: number; private s2: number; private s3: number;

  constructor(seed: number, label = '') {
    let h = (seed >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
    const next = () => {
      h = (h + 0x9e3779b9) >>> 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next(); this.s1 = next(); this.s2 = next(); this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** An independent stream derived from this one's current state and a label. */
  fork(label: string): Rng {
    return new Rng(this.uint32(), label);
  }

  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 ^= t; this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    return ((this.uint32() >>> 5) * 67108864 + (this.uint32() >>> 6)) / 9007199254740992;
  }

  /** Uniform integer in [0, n), exact for n up to 2^53. */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  normal(): number {
    const u = 1 - this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
  }

  /** Random +1/-1 signs. */
  signs(n: number): Float32Array {
    const s = new Float32Array(n);
    for (let i = 0; i < n; i++) s[i] = this.uint32() & 1 ? 1 : -1;
    return s;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: any }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]; a[i] = a[j]; a[j] = t;
    }
    return a;
  }

  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** The generator's state, for checkpoints. */
  state(): number[] { return [this.s0, this.s1, this.s2, this.s3]; }
  setState(s: number[]): void { [this.s0, this.s1, this.s2, this.s3] = s.map((v) => v >>> 0); }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
