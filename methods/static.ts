import type { Method } from './types.js';

export const staticSparse: Method = {
  name: 'static',
  summary: 'random sparse graph at initialisation, never changed',
  options: {},
  sparse: true,
  alwaysSparse: true,
  updates: false,
  startsDense: () => false,
  updatesAt: () => false,
  update: () => { throw new Error('static has no updates'); },
};
