// Alerts for the unattended pair, as log search alerts on Application Insights,
// with one e-mail action group. Deployed by main.bicep.
//
// The queries match what the handlers emit (docs/operations.md, "Alerts"):
//   - the archiver logs one line per run on stdout, JSON in Azure (LOG_FORMAT=json),
//     which the host stores in `traces` with `message` = the line:
//     {"message":"archive run finished","status":"complete|partial|failed|skipped","failed":0,"withdraw_failed":0,...}
//   - the host records every invocation in `requests`: `name` = the function name,
//     `resultCode` = the reader's HTTP status, `duration` in milliseconds.
// archiver/src/run.rs (test `alert_queries_match_the_run_summary_line`) checks the
// strings and field names below against a real summary line.

param namePrefix string
param location string
@description('Resource id of the Application Insights component both apps report to.')
param appInsightsId string
@description('Where alerts are mailed.')
param alertEmail string
param readerFunctionName string
param archiverFunctionName string
@description('Reader alert: share of 5xx answers, in percent, over 15 minutes (at least 20 requests).')
param reader5xxPercent int
@description('Reader alert: 95th percentile latency in milliseconds, over 15 minutes (at least 20 requests).')
param readerP95Ms int
@description('When the apps were first deployed (main.bicep keeps it in a resource group tag): the "no run" alert waits 26 hours from it for a first run.')
param firstDeployed string
@description('Archiver alert: this many runs in a row ended partial (time budget spent, backlog left).')
@minValue(2)
param partialRunsInARow int

// The summary line's message and the fields the queries read.
var runFinished = 'archive run finished'
var runLines = join([
  'traces'
  '| where message has "${runFinished}"'
  '| extend run = parse_json(message)'
  '| where tostring(run.message) == "${runFinished}"'
  '| extend status = tostring(run.status)'
], '\n')

var alerts = [
  {
    name: 'archive-run-failed'
    severity: 1
    description: 'An archive run failed: a store outage or refused query stopped it, records failed, a copy could not be withdrawn, or the host reported the invocation as failed (timeout, crash). The run summary line says which.'
    frequency: 'PT1H'
    window: 'PT6H'
    query: join([
      'union'
      '(${runLines}'
      '| where status == "failed" or toint(run.failed) > 0 or toint(run.withdraw_failed) > 0'
      '| project timestamp),'
      '(requests | where name == "${archiverFunctionName}" and success == false | project timestamp)'
    ], '\n')
  }
  {
    name: 'archive-runs-partial'
    severity: 2
    description: 'The last ${partialRunsInARow} archive runs all ended partial: each spent its time budget with records left. Expected during a backfill; otherwise raise ARCHIVE_MAX_RU_PER_SECOND or run more often (ARCHIVE_SCHEDULE).'
    frequency: 'PT6H'
    window: 'P2D'
    query: join([
      runLines
      '| where status != "skipped"'
      '| top ${partialRunsInARow} by timestamp desc'
      '| summarize runs = count(), partial = countif(status == "partial")'
      '| where runs == ${partialRunsInARow} and partial == runs'
    ], '\n')
  }
  {
    name: 'archive-no-run'
    severity: 1
    description: 'No archive run (other than one skipped for the lease) has finished for over 26 hours: the timer is not firing, the app is stopped or disabled (AzureWebJobs.${archiverFunctionName}.Disabled), or every run dies before its summary. After the first deployment it waits 26 hours, by when the first nightly run must have happened.'
    frequency: 'PT1H'
    window: 'P2D'
    // Rows only when the newest summary is older than 26 hours, or there is none
    // and the deployment is older than that (a fresh one has had no run yet).
    query: join([
      runLines
      '| where status != "skipped"'
      '| summarize last = max(timestamp)'
      '| where (isnull(last) and now() > todatetime(\'${firstDeployed}\') + 26h) or last < ago(26h)'
    ], '\n')
  }
  {
    name: 'reader-5xx'
    severity: 1
    description: 'Over ${reader5xxPercent}% of read requests answered 5xx in 15 minutes: 503 means a store is unreachable or slower than READER_TIMEOUT_SECONDS.'
    frequency: 'PT5M'
    window: 'PT15M'
    query: join([
      'requests'
      '| where name == "${readerFunctionName}"'
      '| summarize total = count(), errors = countif(toint(resultCode) >= 500)'
      '| where total >= 20 and 100.0 * errors / total > ${reader5xxPercent}'
    ], '\n')
  }
  {
    name: 'reader-latency'
    severity: 2
    description: 'The 95th percentile of read latency exceeded ${readerP95Ms} ms over 15 minutes.'
    frequency: 'PT5M'
    window: 'PT15M'
    query: join([
      'requests'
      '| where name == "${readerFunctionName}"'
      '| summarize total = count(), p95 = percentile(duration, 95)'
      '| where total >= 20 and p95 > ${readerP95Ms}'
    ], '\n')
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-billing-alerts'
  location: 'global'
  properties: {
    groupShortName: 'billingarch'
    enabled: true
    emailReceivers: [
      { name: 'operators', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
  }
}

// Each query returns rows only when something is wrong: the rule fires on one row.
resource rules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for alert in alerts: {
  name: '${namePrefix}-${alert.name}'
  location: location
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: ${alert.name}'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: alert.frequency
    windowSize: alert.window
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: [actionGroup.id] }
  }
}]

output actionGroupId string = actionGroup.id
