/**
 * The "update" config group: the prune-grow schedule shared by the methods that update the
 * connectivity (Method.updates). Declared here, beside the methods that read it, once: its type,
 * schema, defaults and `list` lines all come from this declaration (core/options.ts).
 */
import { declareOptions, type OptionsOf } from '../core/options.js';

export const updateOptions = declareOptions({
  delta: { type: 'integer', default: 1000, minimum: 1, help: 'training steps between prune-grow updates (Delta_T)' },
  end: { type: 'number', default: 0.6, exclusiveMinimum: 0, maximum: 1, help: 'fraction of training after which updates stop (T_end; paper: epoch 120 of 200)' },
  alpha: { type: 'number', default: 0.2, minimum: 0, maximum: 1, help: 'initial update fraction, cosine-decayed to 0 at T_end' },
  samplesPerClass: { type: 'integer', default: 10, minimum: 1, help: 'training examples per class in the update batch' },
  scope: { type: 'string', default: 'global', enum: ['global', 'local', 'prune-local'], help: 'rank connections over all layers together, or per layer, or prune per layer and grow over all layers (prune-local)' },
});

/** The prune-grow schedule of a run (config field "update"): delta, end (T_end), alpha, samplesPerClass, scope. */
export type UpdateSchedule = OptionsOf<typeof updateOptions>;
