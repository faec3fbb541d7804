#!/usr/bin/env bash
# npm run bench: installs and starts what the benchmarks need, then runs bench/run.ts.
# Arguments go to bench/run.ts; BENCH_N sets the number of calls per measurement.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
ensure_environment
cd "$VIRTFLEET_ROOT"

[[ -f bench/run.ts ]] || die "there are no benchmarks to run: bench/run.ts does not exist"
[[ -x node_modules/.bin/tsx ]] || die "tsx is not installed (node_modules/.bin/tsx is missing); it comes with npm ci"
step "running bench/run.ts"
exec npx --no-install tsx bench/run.ts "$@"
