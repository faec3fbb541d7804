#!/usr/bin/env bash
# npm run bench: installs and starts what the benchmarks need, then runs bench/run.ts.
# Arguments go to bench/run.ts (benchmark names to run only those); BENCH_N sets the
# number of calls per measurement. Every benchmark runs and reports even when another
# misses a target or fails; the exit code is non-zero when any did, so this is a check.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
ensure_environment
cd "$VIRTFLEET_ROOT"

[[ -f bench/run.ts ]] || die "there are no benchmarks to run: bench/run.ts does not exist"
[[ -x node_modules/.bin/tsx ]] || die "tsx is not installed (node_modules/.bin/tsx is missing); it comes with npm ci"
step "running bench/run.ts"
rc=0
npx --no-install tsx bench/run.ts "$@" || rc=$?
if ((rc != 0)); then
  printf 'benchmarks failed (exit code %s): a target was missed or a benchmark did not run to the end; see the summary above\n' "$rc" >&2
fi
exit "$rc"
