#!/usr/bin/env bash
# Runs scripts/deploy.sh against a fake `az` (no Azure here): a zip deployment
# whose CLI hangs after the upload (the Flex host-status poll,
# Azure/azure-cli#30870) goes on to the smoke check instead of hanging the job,
# and the step that failed is named when az refuses.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
fake="$(mktemp -d)"
trap 'rm -rf "$fake"' EXIT
mkdir -p "$fake/bin" "$fake/dist"
cat >"$fake/bin/az" <<'AZ'
#!/usr/bin/env bash
case "$*" in
  "account show"*) echo 0000 ;;
  "deployment group show"*archiverApp*) echo bill-archiver ;;
  "functionapp deployment source config-zip"*) [[ "${FAKE_AZ_ZIP:-}" == refuse ]] && exit 3; sleep 30 ;;
  "functionapp function list"*) echo ArchiveBillingRecords ;;
  "functionapp config appsettings list"*) echo true ;;
  "resource show"*siteUpdateStrategy*) echo RollingUpdate ;;
  "cosmosdb sql container throughput show"*) [[ -n "${FAKE_AZ_RU:-}" ]] || exit 3; echo "$FAKE_AZ_RU" ;;
  "cosmosdb sql database throughput show"*) exit 3 ;;
  "cosmosdb show"*enablePriorityBasedExecution*) echo "${FAKE_AZ_PBE:-false}" ;;
  *) echo "fake az: unexpected: $*" >&2; exit 9 ;;
esac
AZ
chmod +x "$fake/bin/az"
mkdir -p dist
created_zip=no
[[ -f dist/archiver.zip ]] || { : >dist/archiver.zip; created_zip=yes; }
run() {
  PATH="$fake/bin:$PATH" DEPLOY_ZIP_TIMEOUT=2 timeout 60 ./scripts/deploy.sh archiver --no-package \
    --resource-group rg --name-prefix bill 2>&1
}
status=0
out="$(run)" || status=$?
if [[ $status -ne 0 ]] || ! grep -q "did not report back; the smoke check decides" <<<"$out" ||
  ! grep -q "archiver lists: ArchiveBillingRecords" <<<"$out" || ! grep -q "bill-archiver updates by RollingUpdate" <<<"$out"; then
  echo "FAIL  a hanging zip deployment must go on to the smoke check (exit $status): $out" >&2
  [[ $created_zip == yes ]] && rm -f dist/archiver.zip
  exit 1
fi
echo "ok    deploy.sh: a zip deployment whose az hangs goes on to the smoke check, which passes"
status=0
out="$(FAKE_AZ_ZIP=refuse DEPLOY_ZIP_RETRY_SECONDS=0 run)" || status=$?
[[ $created_zip == yes ]] && rm -f dist/archiver.zip
if [[ $status -eq 0 ]] || ! grep -q "deploying dist/archiver.zip to bill-archiver: az failed" <<<"$out"; then
  echo "FAIL  a refused zip deployment must fail naming the step (exit $status): $out" >&2
  exit 1
fi
echo "ok    deploy.sh: a refused zip deployment fails, naming the step"

# An anonymous profile (a gateway authenticates) needs the gateway's sources, and narrow ones.
anonymous="$fake/anonymous.toml"
{ cat contracts/default.toml; printf '\n[auth]\nmode = "anonymous"\n'; } >"$anonymous"
infra() {
  PATH="$fake/bin:$PATH" timeout 60 ./scripts/deploy.sh infra --no-package --resource-group rg --name-prefix bill \
    --cosmos-account acc --alert-email a@example.com "$@" 2>&1
}
for case in "readerGatewayIpRanges=[]|auth.mode is anonymous" \
  'readerGatewayIpRanges=["0.0.0.0/0"]|admits' 'readerGatewayIpRanges=["10.0.0.0/8"]|admits' \
  'readerGatewayIpRanges=["Any"]|is not an address range' 'readerGatewaySubnetIds=["subnet-1"]|is not a subnet'; do
  status=0
  out="$(infra --contract "$anonymous" --param "${case%%|*}")" || status=$?
  if [[ $status -eq 0 ]] || ! grep -q "${case#*|}" <<<"$out" || grep -q "fake az: unexpected" <<<"$out"; then
    echo "FAIL  an anonymous profile with ${case%%|*} must be refused before az is called (exit $status): $out" >&2
    exit 1
  fi
done
echo "ok    deploy.sh: an anonymous profile is refused without the gateway's sources, or with broad ones"
out="$(FAKE_AZ_RU=12000 infra --contract "$anonymous" --param 'readerGatewayIpRanges=["20.1.2.3/32"]')" || true
if ! grep -q "fake az: unexpected: bicep build" <<<"$out"; then
  echo "FAIL  an anonymous profile with its gateway's address must go on to the deployment: $out" >&2
  exit 1
fi
echo "ok    deploy.sh: an anonymous profile with its gateway's address goes on to the deployment"
if ! grep -q "the container's throughput: 12000 RU/s" <<<"$out" || ! grep -q "priority-based execution is not on" <<<"$out"; then
  echo "FAIL  the deployment must read the container's throughput for the archiver's budget, and warn without priority-based execution: $out" >&2
  exit 1
fi
out="$(FAKE_AZ_RU=12000 FAKE_AZ_PBE=true infra)" || true
if grep -q "priority-based execution is not on" <<<"$out"; then
  echo "FAIL  no warning when priority-based execution is on: $out" >&2
  exit 1
fi
status=0
out="$(infra --param archiveMaxRuPerSecond=lots)" || status=$?
if [[ $status -eq 0 ]] || ! grep -q "archiveMaxRuPerSecond must be auto or a whole number" <<<"$out"; then
  echo "FAIL  a malformed archiveMaxRuPerSecond must be refused before az is called (exit $status): $out" >&2
  exit 1
fi
out="$(infra)" || true
if ! grep -q "throughput could not be read" <<<"$out" || ! grep -q "fake az: unexpected: bicep build" <<<"$out"; then
  echo "FAIL  a container whose throughput cannot be read (serverless) must not stop the deployment: $out" >&2
  exit 1
fi
echo "ok    deploy.sh: reads the container's throughput for the archiver's budget, and goes on without it (serverless)"
status=0
out="$(infra --param 'readerGatewayIpRanges=["20.1.2.3/32"]')" || status=$?
if [[ $status -eq 0 ]] || ! grep -q "only apply to a profile whose auth.mode is anonymous" <<<"$out"; then
  echo "FAIL  gateway sources with a function-key profile must be refused, not ignored (exit $status): $out" >&2
  exit 1
fi
echo "ok    deploy.sh: gateway sources are refused for a profile that is not behind a gateway"

# Front mode needs the current API: refused without it, before az is called.
status=0
out="$(infra --contract contracts/examples/front-mapped.toml)" || status=$?
if [[ $status -eq 0 ]] || ! grep -q "front mode: give the current API" <<<"$out" || grep -q "fake az: unexpected" <<<"$out"; then
  echo "FAIL  a front-mode profile without readerUpstreamUrl must be refused before az is called (exit $status): $out" >&2
  exit 1
fi
out="$(infra --contract contracts/examples/front-mapped.toml --param readerUpstreamUrl=https://billing.example.com)" || true
if ! grep -q "fake az: unexpected: bicep build" <<<"$out"; then
  echo "FAIL  a front-mode profile with readerUpstreamUrl must go on to the deployment: $out" >&2
  exit 1
fi
echo "ok    deploy.sh: a front-mode profile needs the current API (readerUpstreamUrl or front.upstream)"
