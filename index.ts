/**
 * The package entry (`import { defineMethod } from 'sparsebench'`): what a method plugin kept in
 * its own repository may use. A plugin is an ES module whose default export is a method
 * (defineMethod's result, or a plain object of the same shape), named in a config's "plugins" or
 * by --plugin PATH; README "Add a method" walks through one (examples/plugins/sparse-momentum.js).
 */
export { defineMethod } from './methods/define.js';
export {
  dstUpdatesAt, updateFraction, endStep, pruneAndGrow, scopesOf, scoreAll, topScoredPool, denseGradientPool, magnitudePools, pickByScope,
  pickExtreme, probeFlops, momentumOf, type Grower, type Order, type Pool, type Scope, type ScoreRequest, type Scored,
} from './methods/dst.js';
export { uniformInactive, sampleSubset } from './methods/samplers.js';
export type {
  InitContext, Method, MethodInvariants, MethodState, RoundContext, RoundHooks, ScheduleContext, StatefulWeight, StepContext,
  StepReport, UpdateContext, UpdateReport, UpdateSchedule,
} from './methods/types.js';
export type { Connections, SparseWeight } from './models/sparse/types.js';
export { declareOptions, type OptionSpec, type OptionSpecs, type OptionsOf, type OptionValue } from './core/options.js';
