// Runs one plan off the coordinator's event loop: a search of a few seconds must not hold up
// heartbeats, telemetry or the leader lease. Input and plan cross by structured clone.
import { parentPort, workerData } from 'node:worker_threads';
import { planRebalance } from './planner.js';
import type { RebalanceInput, RebalanceOptions } from './rebalance.js';

const { input, options } = workerData as { input: RebalanceInput; options: RebalanceOptions };
parentPort?.postMessage(planRebalance(input, options));
