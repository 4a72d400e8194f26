import type { Method } from './types.js';

export const dense: Method = {
  name: 'dense',
  summary: 'every connection active, no mask updates (the reference)',
  options: {},
  sparse: false,
  alwaysSparse: false,
  updates: false,
  startsDense: () => true,
  updatesAt: () => false,
  update: () => { throw new Error('dense has no updates'); },
};
