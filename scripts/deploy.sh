#!/usr/bin/env bash
# Deploys the pair from a workstation logged in with `az login`, or from
# .github/workflows/deploy.yml, in the order a live system needs:
#   infra     check the template (az bicep build), show what changes (what-if),
#             deploy infra-bicep/main.bicep
#   reader    zip-deploy dist/reader.zip, then check it answers a record that
#             does not exist as the contract profile says (never 5xx)
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
# archiveQuietDays, readerUpstreamUrl (write-through: docs/writes.md),
# archiveMaxRuPerSecond, archivePriority, archiveThroughputBucket, archiveConcurrency,
# cosmosDatabase, cosmosContainer, ...)
# goes in --param name=value or DEPLOY_PARAMETERS ("name=value name=value").
# --contract (DEPLOY_CONTRACT) is the read contract profile: packaged with the
# reader, its partition key set for both apps (COSMOS_PARTITION_KEY), its
# callers' authentication for the reader (readerAuth*: docs/auth.md), and its
# record route and missing-record answer used by the reader's smoke check. An
# anonymous profile (a gateway authenticates) needs the gateway's sources,
# --param readerGatewayIpRanges='["x.x.x.x/32"]' or readerGatewaySubnetIds=...:
# the reader then accepts no other.
# The template sets every app setting, so a redeployment resets any setting
# changed by hand to these values: keep them here (docs/deployment.md, "From a
# workstation").
# The zips come from ./scripts/package.sh unless dist/ already holds them
# (--no-package: use dist/ as it is, as the workflow does with CI's artifact).
set -euo pipefail
# Paths given on the command line are the caller's, resolved before the cd.
caller="$PWD"
at_caller() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$caller" "$1" ;; esac; }
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "deploy.sh: $*" >&2; exit 1; }
step() { printf '==> %s\n' "$*"; }
# Every az call has a time limit: the CLI can wait without end (a deployment's
# status poll, a Flex zip deployment's host check: Azure/azure-cli#30870).
# `az_limit SECONDS WHAT args...` names the step that failed or hung.
az_limit() {
  local seconds="$1" what="$2" status=0
  shift 2
  timeout "$seconds" az "$@" || status=$?
  if [[ $status -eq 124 ]]; then
    echo "deploy.sh: $what: az did not answer within ${seconds}s" >&2
  elif [[ $status -ne 0 ]]; then
    echo "deploy.sh: $what: az failed (exit $status)" >&2
  fi
  return "$status"
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
contract="${DEPLOY_CONTRACT:+$(at_caller "$DEPLOY_CONTRACT")}"
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
    --contract) contract="$(at_caller "${2:-}")"; shift ;;
    --no-package) package=no ;;
    -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
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
  if [[ "$p" == archiveMaxRuPerSecond=* ]]; then
    [[ "${p#*=}" =~ ^(auto|[0-9]+)$ ]] ||
      die "archiveMaxRuPerSecond must be auto or a whole number of RU/s (0: unlimited), not \"${p#*=}\""
  fi
done
[[ $(wc -w <<<"$schedule") -eq 6 ]] || die "--schedule must have six fields (second minute hour day month weekday), not \"$schedule\""
[[ -z "$contract" || -f "$contract" ]] || die "--contract names no file: \"$contract\""
partition_key="$(python3 scripts/contract_info.py "$contract" partition-key)" ||
  die "cannot read the contract profile ${contract:-contracts/default.toml}"
auth_mode="$(python3 scripts/contract_info.py "$contract" auth-mode)"
auth_issuers="$(python3 scripts/contract_info.py "$contract" auth-issuers)"
auth_audiences="$(python3 scripts/contract_info.py "$contract" auth-audiences)"
# Front mode (docs/front-mode.md) forwards to the current API: the template must
# know it (readerUpstreamUrl gives the reader READER_UPSTREAM_URL and the roles a
# move-back needs). From --param, else from the profile's front.upstream.
reader_mode="$(python3 scripts/contract_info.py "$contract" mode)"
if [[ "$reader_mode" == front ]] && ! printf '%s\n' ${extra[@]+"${extra[@]}"} | grep -q '^readerUpstreamUrl=.'; then
  front_upstream="$(python3 scripts/contract_info.py "$contract" front-upstream)"
  [[ -n "$front_upstream" ]] ||
    die "the contract profile is in front mode: give the current API with --param readerUpstreamUrl=https://... (or front.upstream)"
  extra+=("readerUpstreamUrl=$front_upstream")
fi
# An anonymous reader trusts whoever reaches it: its gateway's sources must be
# given, and narrow (docs/auth.md, "Behind a gateway").
if [[ "$stage" == all || "$stage" == infra ]]; then
  gateway_problem="$(AUTH_MODE="$auth_mode" python3 - ${extra[@]+"${extra[@]}"} <<'PY'
import ipaddress, json, os, re, sys
given = dict(a.split("=", 1) for a in sys.argv[1:] if re.match(r"readerGateway(IpRanges|SubnetIds)=", a))
anonymous = os.environ["AUTH_MODE"] == "anonymous"
if given and not anonymous:
    sys.exit(f"{', '.join(given)} only apply to a profile whose auth.mode is anonymous; this one's is {os.environ['AUTH_MODE']}")
if not anonymous:
    sys.exit(0)
try:
    ranges = json.loads(given.get("readerGatewayIpRanges", "[]"))
    subnets = json.loads(given.get("readerGatewaySubnetIds", "[]"))
except ValueError as e:
    sys.exit(f"readerGatewayIpRanges and readerGatewaySubnetIds are JSON arrays ({e})")
if not ranges and not subnets:
    sys.exit("the profile's auth.mode is anonymous: a gateway authenticates, so the reader must accept only the gateway; "
             "give --param readerGatewayIpRanges='[\"<gateway IP>/32\"]' or --param readerGatewaySubnetIds='[\"<subnet id>\"]'")
for r in ranges:
    try:
        net = ipaddress.ip_network(str(r), strict=False)
    except ValueError:
        sys.exit(f"readerGatewayIpRanges: {r!r} is not an address range (CIDR)")
    if net.prefixlen < (24 if net.version == 4 else 64):
        sys.exit(f"readerGatewayIpRanges: {r} admits {net.num_addresses} addresses: a gateway's are a /24 or narrower")
for s in subnets:
    if not re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+", str(s), re.I):
        sys.exit(f"readerGatewaySubnetIds: {s!r} is not a subnet's resource id")
PY
)" || die "$gateway_problem (docs/auth.md)"
fi
cosmos_resource_group="${cosmos_resource_group:-$resource_group}"
command -v az >/dev/null || die "the Azure CLI (az) is not installed"
az_limit 60 "checking the sign-in" account show --query id -o tsv >/dev/null 2>&1 || die "az is not logged in (az login)"

deployment="billing-archive"

# A template parameter given with --param, else its default.
given() { printf '%s\n' ${extra[@]+"${extra[@]}"} | sed -n "s/^$1=//p" | tail -n 1 | grep . || echo "$2"; }

# The live container's RU/s (its manual throughput, its autoscale maximum, or its
# database's shared throughput), for the archiver's default budget: the archiver's
# identity may not read offers (they are outside Cosmos DB's data-plane roles), so
# the deployment reads them on the control plane and passes the figure on
# (archiveContainerRuPerSecond; docs/operations.md, "The request-unit budget").
# Serverless, or not readable here: 0, and the archiver states its default.
container_ru() {
  local db container ru="" query="resource.autoscaleSettings.maxThroughput || resource.throughput"
  db="$(given cosmosDatabase billing)"
  container="$(given cosmosContainer records)"
  # Its own throughput, else its database's (shared); az's complaints go to stderr.
  ru="$(az_limit 120 "reading the container's throughput" cosmosdb sql container throughput show \
    --account-name "$cosmos_account" --resource-group "$cosmos_resource_group" --database-name "$db" \
    --name "$container" --query "$query" -o tsv)" ||
    ru="$(az_limit 120 "reading the database's throughput" cosmosdb sql database throughput show \
      --account-name "$cosmos_account" --resource-group "$cosmos_resource_group" --name "$db" \
      --query "$query" -o tsv)" || ru=""
  [[ "$ru" =~ ^[1-9][0-9]*$ ]] || ru=0
  echo "$ru"
}

# Low priority only counts once the account has priority-based execution on
# (docs/deployment.md, "Sharing the throughput"): say so when it is off.
check_priority() {
  local on
  on="$(az_limit 120 "reading the account's priority-based execution" cosmosdb show --name "$cosmos_account" \
    --resource-group "$cosmos_resource_group" --query enablePriorityBasedExecution -o tsv)" || on=""
  if [[ "$on" != true ]]; then
    echo "deploy.sh: WARNING: priority-based execution is not on for $cosmos_account, so the archiver's" \
      "low priority is ignored and only its budget holds it back from the live API's throughput; turn it on:" \
      "az cosmosdb update -g $cosmos_resource_group -n $cosmos_account --enable-priority-based-execution true" >&2
  fi
}

deploy_infra() {
  local ru=0
  if ! printf '%s\n' ${extra[@]+"${extra[@]}"} | grep -q '^archiveContainerRuPerSecond='; then
    ru="$(container_ru)"
    if [[ "$ru" -gt 0 ]]; then
      step "the container's throughput: $ru RU/s (the archiver's default budget is a share of it)"
    else
      echo "deploy.sh: WARNING: the container's throughput could not be read (above; serverless, or no right" \
        "to read it): the archiver keeps to its stated default of 1000 RU/s unless" \
        "--param archiveMaxRuPerSecond=N or archiveContainerRuPerSecond=N is given" >&2
    fi
  fi
  check_priority
  local params=(
    namePrefix="$name_prefix" cosmosAccountName="$cosmos_account"
    cosmosResourceGroup="$cosmos_resource_group" alertEmail="$alert_email" archiveDryRun="$dry_run"
    archiverPaused="$paused" archiveAfterDays="$after_days" archiveSchedule="$schedule"
    partitionKey="$partition_key" readerAuth="$auth_mode" readerAuthIssuers="$auth_issuers"
    readerAuthAudiences="$auth_audiences" archiveContainerRuPerSecond="$ru" ${extra[@]+"${extra[@]}"}
  )
  step "checking infra-bicep/main.bicep (az bicep build)"
  az_limit 300 "az bicep build" bicep build --file infra-bicep/main.bicep --stdout >/dev/null || die "the template does not build"
  step "what the deployment changes in $resource_group (what-if)"
  az_limit 900 "what-if" deployment group what-if --resource-group "$resource_group" --name "$deployment" \
    --template-file infra-bicep/main.bicep --parameters "${params[@]}" || die "what-if failed: nothing was deployed"
  step "deploying the infrastructure"
  az_limit 2700 "the infrastructure deployment" deployment group create --resource-group "$resource_group" \
    --name "$deployment" --template-file infra-bicep/main.bicep --parameters "${params[@]}" --output none ||
    die "the infrastructure deployment failed or hung (az deployment group show --resource-group $resource_group --name $deployment)"
}

# An output of the last infrastructure deployment (the apps' names).
output() {
  az_limit 120 "reading the deployment's outputs" deployment group show --resource-group "$resource_group" --name "$deployment" \
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
  # On Flex Consumption the CLI uploads, then polls the host's status, a loop
  # that can run without end; the upload is done by then, and the smoke check
  # that follows shows whether the package runs. So a timeout goes on to it.
  local status tries=0
  # A refusal is retried (fresh role assignments take minutes to apply); a hang is not.
  while true; do
    status=0
    az_limit "${DEPLOY_ZIP_TIMEOUT:-900}" "deploying dist/$app.zip to $site" functionapp deployment source config-zip \
      --resource-group "$resource_group" --name "$site" --src "dist/$app.zip" --output none || status=$?
    case "$status" in
      0) return 0 ;;
      124) echo "deploy.sh: the zip deployment to $site did not report back; the smoke check decides" >&2; return 0 ;;
    esac
    ((++tries < 9)) || die "zip deployment to $site failed $tries times"
    echo "deploy.sh: retrying the zip deployment in 20 s ($tries/9)" >&2
    sleep "${DEPLOY_ZIP_RETRY_SECONDS:-20}"
  done
}

function_key() {
  az_limit 60 "reading the reader's function key" functionapp keys list --resource-group "$resource_group" \
    --name "$1" --query functionKeys.default -o tsv
}

deploy_reader() {
  local site host key="" url status body expected
  site="$(output readerApp)"
  host="$(output readerHostName)"
  zip_deploy reader "$site"
  url="https://$host$(python3 scripts/contract_info.py "$contract" smoke-path)"
  # What this machine should be answered (docs/auth.md): with the function key,
  # the missing-record answer; with bearer tokens, the profile's 401 to a token
  # naming a key id the issuer never published, which the reader can say only
  # once it holds the issuer's keys (503 until then: it cannot reach the
  # issuer); behind a gateway, the platform's 403 (access restrictions: the
  # reader is closed to all but the gateway; check a record through it).
  local token=""
  # In front mode the current API answers: its missing-record status (with the
  # header DEPLOY_SMOKE_HEADER, when it wants credentials of its own).
  local own="${DEPLOY_SMOKE_HEADER:-}"
  case "$auth_mode" in
    function-key) expected="$(python3 scripts/contract_info.py "$contract" not-found)" ;;
    bearer)
      expected="$(python3 scripts/contract_info.py "$contract" unauthenticated)"
      # {"alg":"RS256","kid":"deploy-smoke-check","typ":"JWT"}.{"sub":"deploy-smoke-check"}.<no signature>
      token="Authorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlcGxveS1zbW9rZS1jaGVjayIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXBsb3ktc21va2UtY2hlY2sifQ.c2lnbmF0dXJl"
      ;;
    anonymous) expected="403" ;;
  esac
  if [[ "$reader_mode" == front && "$auth_mode" != anonymous ]]; then
    expected="$(python3 scripts/contract_info.py "$contract" not-found | cut -d' ' -f1)"
    # The API's own answer to that path, status and content type, when this
    # machine reaches it: the Functions host's bare 404 (a function not loaded)
    # then cannot pass for a forwarded one.
    local upstream api_answer
    upstream="$(given readerUpstreamUrl "")"
    api_answer="$(curl -sS --connect-timeout 10 --max-time 30 -o /dev/null -w '%{http_code} %{content_type}' \
      ${own:+-H "$own"} "${upstream%/}$(python3 scripts/contract_info.py "$contract" smoke-path)" 2>/dev/null || true)"
    if [[ "$api_answer" == "$expected "?* ]]; then
      expected="$api_answer"
    else
      echo "deploy.sh: WARNING: the current API did not answer $expected with a content type from here" \
        "(${api_answer:-unreachable}); the smoke check can tell the reader's forwarded 404 from the host's own only by its status" >&2
    fi
  fi
  step "smoke check: a record that does not exist answers $expected ($auth_mode)"
  body="$(mktemp)"
  # A fresh instance may need minutes to start and to create its keys, and new
  # role assignments up to about 15 minutes to apply; 5xx, no answer, or the
  # host's bare 401/404 while it restarts are retried for 15 minutes, no longer.
  local deadline=$((SECONDS + 900))
  while ((SECONDS < deadline)); do
    # The host asks for the function key unless the reader checks tokens (behind
    # a gateway too: the gateway sends it).
    if [[ "$auth_mode" != bearer && -z "$key" ]]; then
      key="$(function_key "$site" 2>/dev/null || true)"
      [[ -n "$key" ]] || { sleep 10; continue; }
    fi
    status="$(curl -sS --connect-timeout 10 --max-time 30 -o "$body" -w '%{http_code} %{content_type}' \
      ${key:+-H "x-functions-key: $key"} ${token:+-H "$token"} ${own:+-H "$own"} "$url" || echo "000 -")"
    case "$status" in
      508*) die "the reader's current API (readerUpstreamUrl) leads back to the reader itself: $(cat "$body")" ;;
      "$expected"*) step "reader answers: $status $(cat "$body")"; rm -f "$body"; return 0 ;;
      "$(python3 scripts/contract_info.py "$contract" not-found)"*)
        # Behind a gateway: this machine is among the gateway's sources.
        [[ "$auth_mode" == anonymous ]] || { sleep 10; continue; }
        step "reader answers $status from a gateway source: $(cat "$body")"; rm -f "$body"; return 0 ;;
      401*) key=""; sleep 10 ;;
      000* | 5* | 404*) sleep 10 ;;
      *) die "the reader answered $status: $(cat "$body")" ;;
    esac
  done
  [[ "$auth_mode" != bearer || "${status:-}" != 503* ]] ||
    die "smoke check of the reader: 503 for 15 minutes: it cannot fetch the token issuer's signing keys (its log says why)"
  die "smoke check of the reader: it did not answer $expected within 15 minutes (last: ${status:-no key} $(cat "$body"))"
}

# Reads back how the platform replaces an app's instances: a region or API
# version that does not take siteUpdateStrategy leaves it unset (Recreate).
update_strategy() {
  local strategy
  strategy="$(az_limit 60 "reading $1's site update strategy" resource show --resource-group "$resource_group" \
    --name "$1" --resource-type Microsoft.Web/sites --query properties.functionAppConfig.siteUpdateStrategy.type -o tsv || true)"
  if [[ -z "$strategy" ]]; then
    echo "deploy.sh: warning: $1 has no site update strategy: the platform replaces it by Recreate (brief downtime on each update; docs/deployment.md)" >&2
  else
    step "$1 updates by $strategy"
  fi
}

deploy_archiver() {
  local site functions
  site="$(output archiverApp)"
  zip_deploy archiver "$site"
  step "smoke check: the timer function is listed"
  local deadline=$((SECONDS + 900))
  while ((SECONDS < deadline)); do
    functions="$(az_limit 60 "listing the archiver's functions" functionapp function list --resource-group "$resource_group" \
      --name "$site" --query '[].name' -o tsv || true)"
    if grep -q 'ArchiveBillingRecords' <<<"$functions"; then
      step "archiver lists: $functions (ARCHIVE_DRY_RUN=$(az_limit 60 "reading the archiver's settings" functionapp config appsettings list \
        --resource-group "$resource_group" --name "$site" --query "[?name=='ARCHIVE_DRY_RUN'].value" -o tsv))"
      update_strategy "$site"
      return 0
    fi
    sleep 10
  done
  die "smoke check of the archiver: it does not list ArchiveBillingRecords after 15 minutes (is ARCHIVE_SCHEDULE set?)"
}

case "$stage" in
  infra) deploy_infra ;;
  reader) deploy_reader ;;
  archiver) deploy_archiver ;;
  all) deploy_infra; deploy_reader; deploy_archiver ;;
esac
