import type { ScorePlugin } from '../plugins.js';
import { clamp100 } from '../plugins.js';
import { fillAfter } from './binpack.js';

export const SPREAD = 'spread';

/** Prefers the emptiest host, spreading load and failure impact. */
export const spreadScorer: ScorePlugin = {
  name: SPREAD,
  score: (request, host) => clamp100((1 - fillAfter(request, host)) * 100),
};
