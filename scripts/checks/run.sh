#!/usr/bin/env bash
# The deployment checks that need no Azure, run by ./scripts/test.sh: every Bicep
# template parses and holds the properties docs/deployment.md promises
# (infra.py; infra_mutations.py shows each of its rules fails when its property
# is undone), the apps' host configuration holds (apps.py), the workflows parse
# and deploy in order (workflows.py), every script passes ShellCheck, and
# deploy.sh refuses to start without its parameters.
# Installs its pinned Python packages (requirements.txt) on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bin="$(scripts/python-venv.sh scripts/checks)"

echo "-- infra-bicep/"
"$bin/python" scripts/checks/infra.py
echo "-- infra-bicep/, each rule undone once: the check must fail"
"$bin/python" scripts/checks/infra_mutations.py
echo "-- host.json, function.json, the zips"
"$bin/python" scripts/checks/apps.py
echo "-- scripts/compare.py (the rollout comparison)"
"$bin/python" scripts/checks/compare_test.py
echo "-- .github/workflows/"
"$bin/python" scripts/checks/workflows.py
echo "-- shellcheck"
mapfile -t scripts < <(find scripts -name '*.sh' -not -path '*/node_modules/*' -not -path '*/.venv/*' | sort; echo .ci/run)
"$bin/shellcheck" "${scripts[@]}"
echo "ok    ${#scripts[@]} scripts pass ShellCheck"

echo "-- deploy.sh without parameters"
out="$(env -i PATH="$PATH" HOME="${HOME:-/tmp}" ./scripts/deploy.sh 2>&1)" && status=0 || status=$?
for name in --resource-group --name-prefix --cosmos-account --alert-email; do
  grep -q -- "missing parameter: $name" <<<"$out" || { echo "FAIL  deploy.sh does not name $name: $out" >&2; exit 1; }
done
[[ $status -eq 2 ]] || { echo "FAIL  deploy.sh exited $status without parameters" >&2; exit 1; }
echo "ok    deploy.sh refuses to start and names each missing parameter"
echo "-- deploy.sh against a fake az"
./scripts/checks/deploy_test.sh
