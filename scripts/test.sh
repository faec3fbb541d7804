#!/usr/bin/env bash
# npm test: installs and starts what the tests need (Debian packages, node_modules,
# the build, dockerd, libvirtd, the local busybox image), lints, then runs every
# vitest project (unit and e2e, which start their own nats-server and daemons).
#
#   npm test                    # lint + all tests
#   npm test -- test/e2e        # extra arguments go to vitest
#   npm test -- --project unit
#   VIRTFLEET_SKIP_LINT=1 npm test
#
# The last line printed is "N passed, N failed" (", N skipped" when some were);
# the exit code is vitest's, or lint's when only lint failed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
ensure_environment
cd "$VIRTFLEET_ROOT"

lint_rc=0
if [[ ${VIRTFLEET_SKIP_LINT:-0} != 1 ]]; then
  step "lint (npm run lint: eslint and tsc -p tsconfig.check.json)"
  npm run --silent lint || lint_rc=$?
fi

results=.virtfleet/test-results.json
mkdir -p "$(dirname "$results")"
rm -f "$results" # never report a previous run's numbers
step "vitest run $*"
vitest_rc=0
npx --no-install vitest run --reporter=default --reporter=json --outputFile="$results" "$@" || vitest_rc=$?

if [[ ! -s $results ]]; then
  printf 'error: vitest wrote no results to %s (exit code %s)\n' "$results" "$vitest_rc" >&2
  exit $((vitest_rc != 0 ? vitest_rc : 1))
fi
# A file that fails to load (syntax error, throwing import) has no test results of its own:
# count it as one failed test so the summary never says "0 failed" for a red run.
# shellcheck disable=SC2016 # JavaScript, not shell
summary=$(node -e '
  const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  const unloaded = (r.testResults ?? []).filter((f) => f.status === "failed" && (f.assertionResults ?? []).length === 0).length;
  const failed = (r.numFailedTests ?? 0) + unloaded;
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${r.numPassedTests ?? 0} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : ""));
' "$results")

if ((lint_rc != 0)); then
  printf 'lint failed (exit code %s): see its output above\n' "$lint_rc"
fi
if ((vitest_rc != 0)) && [[ $summary == *" 0 failed"* ]]; then
  printf 'vitest exited with code %s although no test failed: look for unhandled errors above\n' "$vitest_rc"
fi
printf '%s\n' "$summary"
if ((vitest_rc != 0)); then exit "$vitest_rc"; fi
exit "$lint_rc"
