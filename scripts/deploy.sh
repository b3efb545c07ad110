#!/usr/bin/env bash
# Deploys the pair from a workstation logged in with `az login`, or from
# .github/workflows/deploy.yml, in the order a live system needs:
#   infra     check the template (az bicep build), show what changes (what-if),
#             deploy infra-bicep/main.bicep
#   reader    zip-deploy dist/reader.zip, then check it answers a record that
#             does not exist with 404 JSON (never 5xx)
#   archiver  zip-deploy dist/archiver.zip, then check its timer function is listed
#   all       the three in that order (the default)
#
#   scripts/deploy.sh [all|infra|reader|archiver] --resource-group RG --name-prefix P \
#     --cosmos-account A [--cosmos-resource-group R] --alert-email E \
#     [--dry-run true|false] [--paused true|false] [--after-days N] [--schedule CRON] \
#     [--contract FILE] [--param name=value ...]
#
# Every flag may come from the environment instead (DEPLOY_RESOURCE_GROUP,
# DEPLOY_NAME_PREFIX, DEPLOY_COSMOS_ACCOUNT, DEPLOY_COSMOS_RESOURCE_GROUP,
# DEPLOY_ALERT_EMAIL, DEPLOY_DRY_RUN, DEPLOY_PAUSED, DEPLOY_AFTER_DAYS,
# DEPLOY_SCHEDULE, DEPLOY_PARAMETERS). The archiver's operating settings are
# --dry-run (ARCHIVE_DRY_RUN, default true: a first deployment archives nothing),
# --paused (the timer, default false), --after-days (ARCHIVE_AFTER_DAYS, 90) and
# --schedule (ARCHIVE_SCHEDULE, nightly); any other template parameter (ageField,
# archiveMaxRuPerSecond, archiveConcurrency, cosmosDatabase, cosmosContainer, ...)
# goes in --param name=value or DEPLOY_PARAMETERS ("name=value name=value").
# --contract (DEPLOY_CONTRACT) is the read contract profile: packaged with the
# reader, its partition key set for both apps (COSMOS_PARTITION_KEY), and its
# record route and missing-record answer used by the reader's smoke check.
# The template sets every app setting, so a redeployment resets any setting
# changed by hand to these values: keep them here (README, "Rollout").
# The zips come from ./scripts/package.sh unless dist/ already holds them
# (--no-package: use dist/ as it is, as the workflow does with CI's artifact).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "deploy.sh: $*" >&2; exit 1; }
step() { printf '==> %s\n' "$*"; }
# Runs a command until it succeeds, at most $1 times, 20 s apart: fresh role
# assignments take minutes to reach the storage and host endpoints.
retry() {
  local tries="$1" n=1
  shift
  until "$@"; do
    ((n++ < tries)) || return 1
    echo "deploy.sh: retrying in 20 s ($n/$tries): $*" >&2
    sleep 20
  done
}

stage=all
resource_group="${DEPLOY_RESOURCE_GROUP:-}"
name_prefix="${DEPLOY_NAME_PREFIX:-}"
cosmos_account="${DEPLOY_COSMOS_ACCOUNT:-}"
cosmos_resource_group="${DEPLOY_COSMOS_RESOURCE_GROUP:-}"
alert_email="${DEPLOY_ALERT_EMAIL:-}"
dry_run="${DEPLOY_DRY_RUN:-true}"
paused="${DEPLOY_PAUSED:-false}"
after_days="${DEPLOY_AFTER_DAYS:-90}"
schedule="${DEPLOY_SCHEDULE:-0 0 2 * * *}"
contract="${DEPLOY_CONTRACT:-}"
read -r -a extra <<<"${DEPLOY_PARAMETERS:-}"
package=yes

while [[ $# -gt 0 ]]; do
  case "$1" in
    all | infra | reader | archiver) stage="$1" ;;
    --resource-group) resource_group="${2:-}"; shift ;;
    --name-prefix) name_prefix="${2:-}"; shift ;;
    --cosmos-account) cosmos_account="${2:-}"; shift ;;
    --cosmos-resource-group) cosmos_resource_group="${2:-}"; shift ;;
    --alert-email) alert_email="${2:-}"; shift ;;
    --dry-run) dry_run="${2:-}"; shift ;;
    --paused) paused="${2:-}"; shift ;;
    --after-days) after_days="${2:-}"; shift ;;
    --schedule) schedule="${2:-}"; shift ;;
    --param) extra+=("${2:-}"); shift ;;
    --contract) contract="${2:-}"; shift ;;
    --no-package) package=no ;;
    -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

# Refuse before touching anything, naming every missing parameter.
missing=()
[[ -n "$resource_group" ]] || missing+=("--resource-group (DEPLOY_RESOURCE_GROUP)")
[[ -n "$name_prefix" ]] || missing+=("--name-prefix (DEPLOY_NAME_PREFIX)")
if [[ "$stage" == all || "$stage" == infra ]]; then
  [[ -n "$cosmos_account" ]] || missing+=("--cosmos-account (DEPLOY_COSMOS_ACCOUNT)")
  [[ -n "$alert_email" ]] || missing+=("--alert-email (DEPLOY_ALERT_EMAIL)")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  printf 'deploy.sh: missing parameter: %s\n' "${missing[@]}" >&2
  exit 2
fi
[[ "$dry_run" == true || "$dry_run" == false ]] || die "--dry-run must be true or false, not \"$dry_run\""
[[ "$paused" == true || "$paused" == false ]] || die "--paused must be true or false, not \"$paused\""
[[ "$after_days" =~ ^[1-9][0-9]*$ ]] || die "--after-days must be a whole number of days, not \"$after_days\""
for p in ${extra[@]+"${extra[@]}"}; do
  [[ "$p" =~ ^[A-Za-z][A-Za-z0-9]*=. ]] || die "--param must be name=value, not \"$p\""
done
[[ $(wc -w <<<"$schedule") -eq 6 ]] || die "--schedule must have six fields (second minute hour day month weekday), not \"$schedule\""
[[ -z "$contract" || -f "$contract" ]] || die "--contract names no file: \"$contract\""
partition_key="$(python3 scripts/contract_info.py "$contract" partition-key)" ||
  die "cannot read the contract profile ${contract:-contracts/default.toml}"
cosmos_resource_group="${cosmos_resource_group:-$resource_group}"
command -v az >/dev/null || die "the Azure CLI (az) is not installed"
az account show --query id -o tsv >/dev/null 2>&1 || die "az is not logged in (az login)"

deployment="billing-archive"

deploy_infra() {
  local params=(
    namePrefix="$name_prefix" cosmosAccountName="$cosmos_account"
    cosmosResourceGroup="$cosmos_resource_group" alertEmail="$alert_email" archiveDryRun="$dry_run"
    archiverPaused="$paused" archiveAfterDays="$after_days" archiveSchedule="$schedule"
    partitionKey="$partition_key" ${extra[@]+"${extra[@]}"}
  )
  step "checking infra-bicep/main.bicep (az bicep build)"
  az bicep build --file infra-bicep/main.bicep --stdout >/dev/null
  step "what the deployment changes in $resource_group (what-if)"
  az deployment group what-if --resource-group "$resource_group" --name "$deployment" \
    --template-file infra-bicep/main.bicep --parameters "${params[@]}"
  step "deploying the infrastructure"
  az deployment group create --resource-group "$resource_group" --name "$deployment" \
    --template-file infra-bicep/main.bicep --parameters "${params[@]}" --output none
}

# An output of the last infrastructure deployment (the apps' names).
output() {
  az deployment group show --resource-group "$resource_group" --name "$deployment" \
    --query "properties.outputs.$1.value" -o tsv
}

packaged=no
zips() {
  if [[ "$package" == yes && "$packaged" == no ]]; then
    if [[ -n "$contract" ]]; then ./scripts/package.sh --contract "$contract"; else ./scripts/package.sh; fi
    packaged=yes
  fi
  [[ -f "dist/$1.zip" ]] || die "dist/$1.zip is missing (./scripts/package.sh builds it)"
}

zip_deploy() {
  local app="$1" site="$2"
  zips "$app"
  step "deploying dist/$app.zip to $site"
  retry 9 az functionapp deployment source config-zip --resource-group "$resource_group" --name "$site" \
    --src "dist/$app.zip" --output none || die "zip deployment to $site failed"
}

function_key() {
  az functionapp keys list --resource-group "$resource_group" --name "$1" --query functionKeys.default -o tsv
}

deploy_reader() {
  local site host key="" url status body expected
  site="$(output readerApp)"
  host="$(output readerHostName)"
  zip_deploy reader "$site"
  url="https://$host$(python3 scripts/contract_info.py "$contract" smoke-path)"
  expected="$(python3 scripts/contract_info.py "$contract" not-found)"
  step "smoke check: a record that does not exist answers $expected"
  body="$(mktemp)"
  # A fresh instance may need minutes to start and to create its keys; 5xx, no
  # answer, or the host's bare 401/404 while it restarts are retried.
  for _ in $(seq 1 30); do
    [[ -n "$key" ]] || key="$(function_key "$site" 2>/dev/null || true)"
    if [[ -z "$key" ]]; then
      sleep 10
      continue
    fi
    status="$(curl -sS --connect-timeout 10 --max-time 30 -o "$body" -w '%{http_code} %{content_type}' \
      -H "x-functions-key: $key" "$url" || echo "000 -")"
    case "$status" in
      "$expected"*) step "reader answers: $status $(cat "$body")"; rm -f "$body"; return 0 ;;
      401*) key=""; sleep 10 ;;
      000* | 5* | 404*) sleep 10 ;;
      *) die "the reader answered $status: $(cat "$body")" ;;
    esac
  done
  die "the reader did not answer $expected within 5 minutes (last: ${status:-no key} $(cat "$body"))"
}

deploy_archiver() {
  local site functions
  site="$(output archiverApp)"
  zip_deploy archiver "$site"
  step "smoke check: the timer function is listed"
  for _ in $(seq 1 18); do
    functions="$(az functionapp function list --resource-group "$resource_group" --name "$site" --query '[].name' -o tsv || true)"
    if grep -q 'ArchiveBillingRecords' <<<"$functions"; then
      step "archiver lists: $functions (ARCHIVE_DRY_RUN=$(az functionapp config appsettings list \
        --resource-group "$resource_group" --name "$site" --query "[?name=='ARCHIVE_DRY_RUN'].value" -o tsv))"
      return 0
    fi
    sleep 10
  done
  die "the archiver app does not list ArchiveBillingRecords (is ARCHIVE_SCHEDULE set?)"
}

case "$stage" in
  infra) deploy_infra ;;
  reader) deploy_reader ;;
  archiver) deploy_archiver ;;
  all) deploy_infra; deploy_reader; deploy_archiver ;;
esac
