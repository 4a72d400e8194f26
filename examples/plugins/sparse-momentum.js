/**
 * Sparse Momentum (Dettmers & Zettlemoyer 2019) as a sparsebench plugin, kept outside the
 * repository's methods/. At every update (the shared "update" schedule): prune the k_l smallest
 * |w| of every layer (k_l = ceil(alpha_t |A_l|)); share the regrowth out over the layers in
 * proportion to the mean |momentum| of their active weights (scope global; scope local regrows
 * k_l in each layer); grow, per layer, the inactive connections with the largest |gradient| of
 * one probe pass. The paper grows by the momentum of the missing weights, which it keeps dense;
 * here an inactive connection has no momentum, and its gradient is what its momentum would be
 * after one step. That gradient is the dense one (as RigL's): not always sparse.
 */
import { defineMethod, denseGradientPool, dstUpdatesAt, magnitudePools, pickByScope, probeFlops, updateFraction } from 'sparsebench';

/** `total` split over layers in proportion to `weight`, at most `room[l]` each; leftovers by largest remainder, ties to the lower layer. */
function share(total, weight, room) {
  const sum = weight.reduce((a, b) => a + b, 0);
  const exact = weight.map((w) => (sum > 0 ? (total * w) / sum : total / weight.length));
  const out = exact.map((x, l) => Math.min(room[l], Math.floor(x)));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact.map((x, l) => l).sort((a, b) => (exact[b] - Math.floor(exact[b])) - (exact[a] - Math.floor(exact[a])) || a - b);
  while (left > 0) {
    const before = left;
    for (const l of order) if (left > 0 && out[l] < room[l]) { out[l]++; left--; }
    if (left === before) throw new Error(`sparse-momentum: no room to regrow ${left} connections`);
  }
  return out;
}

export default defineMethod({
  name: 'sparse-momentum',
  summary: 'Sparse Momentum: prune smallest |w| per layer, regrow across layers by mean |momentum|, grow the largest |gradient| (dense gradient)',
  options: {
    redistribute: { type: 'string', default: 'momentum', enum: ['momentum', 'none'], help: 'regrowth per layer by mean |momentum| (scope global), or where it was pruned' },
  },
  sparse: true,
  alwaysSparse: false,
  updates: true,
  startsDense: () => false,
  updatesAt: (ctx) => dstUpdatesAt(ctx),
  update(ctx, o) {
    const layers = ctx.layers;
    const alpha = updateFraction(ctx);
    const active = layers.map((l) => l.active());
    const room = layers.map((l, i) => l.rows * l.cols - active[i].row.length);
    const k = active.map((a, i) => Math.min(room[i], Math.ceil(alpha * a.row.length)));
    const pruned = pickByScope(magnitudePools(layers, active), k, false, false);
    let grow = k;
    if (ctx.schedule.scope === 'global' && o.redistribute === 'momentum') {
      const mean = layers.map((l, i) => {
        const v = ctx.momentum(i, active[i]);
        let s = 0;
        for (const x of v) s += Math.abs(x);
        return v.length ? s / v.length : 0;
      });
      grow = share(k.reduce((a, b) => a + b, 0), mean, room);
    }
    ctx.probe();
    let flops = probeFlops(layers);
    const grown = layers.map((l, i) => {
      const r = denseGradientPool(l, active[i], grow[i]);
      flops += r.flops;
      return r.pool;
    });
    layers.forEach((l, i) => { if (pruned[i].row.length) l.prune(pruned[i]); });
    layers.forEach((l, i) => { if (grown[i].row.length) l.grow(grown[i]); });
    const count = (cs) => cs.reduce((a, c) => a + c.row.length, 0);
    return { alpha, k: count(pruned), grown: count(grown), pruned: count(pruned), flops };
  },
});
