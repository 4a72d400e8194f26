/**
 * The method as hooks of the training loop (harness/train.ts): the loop knows only `LoopHook`s
 * (a start, a point before every step, a point after every step) and calls them in order; this
 * file turns a method's `initialize`, `update` and `afterStep` (methods/types.ts) into such hooks,
 * each building its context from the run context and run under the harness' checks
 * (run-context.ts checkedHook). The rounds of a multi-round method are an outer runner
 * (harness/rounds.ts), not a hook.
 *
 * The one decision a reader may question: the hooks are runInitialize and stepHooks inside
 * checkedHook, and those two are exported bare for bench step, which times the step as the loop
 * runs it but without the invariant checks (the harness' cost, not the method's).
 */
import { momentumOf } from '../methods/dst.js';
import type { InitContext, ScheduleContext, StepReport, UpdateContext, UpdateReport } from '../methods/types.js';
import { checkTarget } from './invariants.js';
import { checkedHook, type HookOutcome, type LoopHook, type RunContext } from './run-context.js';

/** The InitContext of a run (the probe is the run's; the harness releases it after the hook). */
function initContext(ctx: RunContext): InitContext {
  return {
    layers: ctx.model.layers,
    rng: ctx.rng.method,
    sparsity: ctx.sparsity,
    schedule: ctx.schedule,
    targetCounts: ctx.targetCounts,
    probe: ctx.probe,
    state: ctx.methodState,
  };
}

/** Method.initialize on the run's layers, unchecked (bench step; the loop runs it through `methodHooks`). */
export function runInitialize(ctx: RunContext): UpdateReport {
  try {
    return ctx.method.initialize!(initContext(ctx), ctx.spec.method);
  } finally {
    ctx.model.layers.forEach((l) => l.clearProbe());
    ctx.probe.release();
  }
}

/** The training step's probe switch and Method.afterStep, unchecked (bench step; the loop runs them through `methodHooks`). */
export function stepHooks(ctx: RunContext) {
  const layers = ctx.model.layers;
  return {
    before(): void {
      if (ctx.method.afterStep) layers.forEach((l) => l.setProbe(true));
    },
    after(at: ScheduleContext, lr: number): StepReport | null {
      if (!ctx.method.afterStep) return null;
      layers.forEach((l) => l.setProbe(false));
      try {
        const t = ctx.spec.training;
        return ctx.method.afterStep({ ...at, layers, sparsity: ctx.sparsity, lr, momentum: t.momentum, weightDecay: t.weightDecay, state: ctx.methodState }, ctx.spec.method);
      } finally {
        layers.forEach((l) => l.clearProbe());
      }
    },
  };
}

/**
 * The method's hooks for the loop: `initialize` (its report recorded as an update at step 0) and
 * the target check of a method that keeps its count at the start; `update` when updatesAt says
 * so; `afterStep` after every step. Every one runs under the harness' checks.
 */
export function methodHooks(ctx: RunContext): LoopHook[] {
  const { method, model, spec } = ctx;
  const at = { method: spec.method.name, step: 0 };
  const hooks: LoopHook[] = [{
    start() {
      let outcome: HookOutcome | null = null;
      if (method.initialize) {
        const { result, ms, record } = checkedHook(ctx, 'initialize', 0, () => runInitialize(ctx), (r) => r);
        outcome = { flops: result.flops, record, updateMs: ms };
      }
      // a method that keeps its count is at its target from the start
      if (ctx.invariants.counts === 'kept') checkTarget({ ...at, hook: 'initialize' }, model.layers, method.sparse ? ctx.targetCounts : null);
      return outcome;
    },
  }];
  if (method.updates) {
    hooks.push({
      beforeStep(point) {
        if (!method.updatesAt(point, spec.method)) return null;
        const uctx: UpdateContext = {
          step: point.step, totalSteps: point.totalSteps, stepsPerEpoch: point.stepsPerEpoch, schedule: point.schedule,
          layers: model.layers, rng: ctx.rng.method, sparsity: ctx.sparsity, probe: () => ctx.probe(),
          momentum: (l, c) => momentumOf(model.layers[l], c), state: ctx.methodState,
        };
        const { result, ms, record } = checkedHook(ctx, 'update', point.step, () => method.update(uctx, spec.method), (r) => r);
        return { flops: result.flops, record, updateMs: ms };
      },
    });
  }
  if (method.afterStep) {
    const step = stepHooks(ctx);
    hooks.push({
      probesStep: true,
      afterStep(point, lr) {
        const { result, record } = checkedHook(ctx, 'afterStep', point.step, () => step.after(point, lr)!, (r) => r.update);
        return { flops: result.flops, record };
      },
    });
  }
  return hooks;
}
