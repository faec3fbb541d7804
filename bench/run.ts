// npm run bench: every benchmark, each against a baseline measured in the same run.
import { benchDispatch, reportDispatch } from './dispatch.bench.js';
import { benchFailover, reportFailover } from './failover.bench.js';
import { benchHostLoss, reportHostLoss } from './host-loss.bench.js';
import { benchPlacement, reportPlacement } from './placement.bench.js';

const n = Number(process.env.BENCH_N ?? 2000);
const dispatch = await benchDispatch(n);
console.log(reportDispatch(dispatch));

const placement = benchPlacement();
console.log(reportPlacement(placement));

const failover = await benchFailover(Number(process.env.BENCH_FAILOVER_TRIALS ?? 10));
console.log(reportFailover(failover));

const hostLoss = await benchHostLoss(Number(process.env.BENCH_HOST_LOSS_TRIALS ?? 10), Number(process.env.BENCH_FENCE_FIRST_TRIALS ?? 5));
console.log(reportHostLoss(hostLoss));
