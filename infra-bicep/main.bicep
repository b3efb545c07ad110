// The billing archive: the archive storage account, the two Function Apps
// (archiver, reader) on Flex Consumption, each with its own host storage account
// and system-assigned identity, Application Insights, alerts (monitoring.bicep),
// and the data roles each identity needs, and no more.
//
//   az deployment group create -g <rg> -f infra-bicep/main.bicep \
//     -p namePrefix=<short prefix> cosmosAccountName=<existing account> \
//        alertEmail=<address> [cosmosResourceGroup=<its resource group>]
//
// Never deployed here: the live Cosmos DB account, database and container (a PUT
// of the container could change its partition key or indexing policy). The
// account is only referenced (`existing`); cosmos-roles.bicep adds a role
// definition and two role assignments under it (one more of each with
// write-through), nothing else. The indexing policy
// is NOT managed here either: the reader's lists work with the default policy and
// need no composite index (docs/read-api.md, "How lists are served").
//
// No keys, SAS tokens or connection strings with keys: shared-key access is off
// on every storage account, and Application Insights accepts only Entra ID.
// The archiver starts in dry run (archiveDryRun=true): it reports what it would
// move and writes nothing until redeployed with archiveDryRun=false.

@description('Short prefix for new resource names: lowercase letters, digits and hyphens (hyphens are dropped in storage account names).')
@minLength(3)
@maxLength(11)
param namePrefix string

param location string = resourceGroup().location

@description('The existing Cosmos DB (NoSQL) account holding the billing records.')
param cosmosAccountName string

@description('The resource group of the Cosmos DB account, if not this one.')
param cosmosResourceGroup string = resourceGroup().name
param cosmosDatabase string = 'billing'
param cosmosContainer string = 'records'

@description('A subnet (delegated to Microsoft.App/environments) both apps integrate with, for accounts reachable only from a virtual network; empty for public endpoints.')
param appSubnetId string = ''

@description('The live container\'s partition key, one top-level property path (the contract profile\'s container.partition_key; scripts/deploy.sh --contract sets it).')
param partitionKey string = '/customerId'

@description('The field that dates a record: _ts or a top-level ISO-8601 date field.')
param ageField string = '_ts'
param archiveAfterDays int = 90

@description('A record written (_ts) within this many days is never archived, whatever its age field says; 0 turns it off (docs/writes.md).')
@minValue(0)
param archiveQuietDays int = 30
param archiveContainer string = 'billing-archive'

@description('Archived copies dated more than this many days ago are deleted from the archive by the nightly run, unless their customer is on hold (docs/operations.md, "Retention and holds"); 0 keeps them for ever. More than archiveAfterDays.')
@minValue(0)
@maxValue(36500)
param archiveRetentionDays int = 0

@description('Report what would move and write nothing. The rollout starts in dry run.')
param archiveDryRun bool = true

@description('Pause the archiver: its timer stops firing (the host\'s AzureWebJobs.<function>.Disabled setting); nothing else changes.')
param archiverPaused bool = false

@description('Upper bound on records in flight in the archiver (1 to 256), or auto.')
param archiveConcurrency string = 'auto'

@description('Request units per second the archiver may spend: auto (archiveRuSharePercent of the container\'s throughput), a number, or 0 = unlimited.')
param archiveMaxRuPerSecond string = 'auto'

@description('With archiveMaxRuPerSecond auto: the share of the container\'s throughput (manual RU/s or autoscale maximum) the archiver may spend.')
@minValue(1)
@maxValue(100)
param archiveRuSharePercent int = 50

@description('The container\'s RU/s as the deployment read it (scripts/deploy.sh fills it in); 0 = not read. The archiver reads the offer itself when its identity may.')
@minValue(0)
param archiveContainerRuPerSecond int = 0

@description('Priority of the archiver\'s Cosmos requests: low (throttled before the live API\'s when the account has priority-based execution) or high.')
@allowed([
  'low'
  'high'
])
param archivePriority string = 'low'

@description('Throughput bucket (1 to 5) the archiver\'s Cosmos requests go into; 0 = none. docs/deployment.md, "Sharing the throughput".')
@minValue(0)
@maxValue(5)
param archiveThroughputBucket int = 0

@description('The archiver timer schedule: six-field NCRONTAB, UTC.')
param archiveSchedule string = '0 0 2 * * *'

// Lifecycle rules age a previous version from when it was written, not from when
// it stopped being current (Learn, "Lifecycle management policy structure"): a copy
// archived 200 days ago and withdrawn today is deleted by the next pass. What keeps
// it recoverable then is blob soft delete, which a lifecycle delete goes through.
@description('Days after it was written that a previous version of an archive blob is deleted by lifecycle management.')
@minValue(1)
param previousVersionRetentionDays int = 90

@description('Days a deleted archive blob or version stays recoverable (blob soft delete): the least time any copy that stopped being current can still be restored.')
@minValue(7)
@maxValue(365)
param blobSoftDeleteRetentionDays int = 30

@description('Days a deleted blob container can be restored.')
@minValue(1)
@maxValue(365)
param containerDeleteRetentionDays int = 30

@allowed([512, 2048, 4096])
param archiverInstanceMemoryMB int = 2048

@allowed([512, 2048, 4096])
param readerInstanceMemoryMB int = 512

@minValue(40)
@maxValue(1000)
param readerMaximumInstanceCount int = 40

@description('Every reader request answers within this many seconds (READER_TIMEOUT_SECONDS).')
@minValue(1)
@maxValue(200)
param readerTimeoutSeconds int = 10

@description('A list page ends early once its records reach this many bytes (READER_PAGE_MAX_BYTES; BENCHMARKS.md, "Reader memory").')
@minValue(65536)
@maxValue(268435456)
param readerPageMaxBytes int = 4194304

@description('Always-ready reader instances: no cold start for the first requests, and with two a rolling update replaces one while the other serves (docs/deployment.md, "Deploys without downtime"); 0 = scale from zero.')
@minValue(0)
param readerAlwaysReady int = 2

@description('How a deploy or a settings change replaces each app\'s instances (Flex Consumption site update strategy): RollingUpdate drains and replaces them in batches, in-flight requests and runs finishing first; Recreate restarts them all at once (a brief gap, in-flight work cut). docs/deployment.md, "Deploys without downtime".')
@allowed(['RollingUpdate', 'Recreate'])
param siteUpdateStrategy string = 'RollingUpdate'

@description('When this deployment ran (a default, not to be set).')
param deployedAt string = utcNow('o')

// When the apps were first deployed in this resource group, kept in a tag of it:
// the "no run" alert waits until the first scheduled run could have happened
// after that, and a redeployment does not move it (the alert would stay silent
// for a day after every deployment otherwise).
var firstDeployedTag = 'billing-archive-first-deployed'
var groupTags = contains(resourceGroup(), 'tags') ? resourceGroup().tags : {}
var firstDeployed = contains(groupTags, firstDeployedTag) ? groupTags[firstDeployedTag] : deployedAt

resource groupTagsResource 'Microsoft.Resources/tags@2024-03-01' = {
  name: 'default'
  properties: { tags: union(groupTags, { '${firstDeployedTag}': firstDeployed }) }
}

@description('The team\'s current API (https://host[/base]): the reader passes the contract profile\'s writes to it, moving archived records back into Cosmos first (docs/writes.md). Empty: the reader is read-only and keeps read-only roles.')
param readerUpstreamUrl string = ''

// Write-through gives the reader exactly what a move-back needs on top of its
// reads: create items in the live container, delete blobs in the archive.
var writeThrough = !empty(readerUpstreamUrl)

// Callers' authentication, as the contract profile's [auth] says (docs/auth.md);
// scripts/deploy.sh --contract sets these from the profile. The reader refuses to
// start when READER_AUTH* differ from the profile it was packaged with.
@description('How callers authenticate to the reader (the profile\'s auth.mode): function-key (the host checks a function key), bearer (the reader validates tokens itself), anonymous (a gateway such as API Management authenticates; the reader then accepts only readerGatewayIpRanges and readerGatewaySubnetIds).')
@allowed(['function-key', 'bearer', 'anonymous'])
param readerAuth string = 'function-key'

@description('Bearer mode: the profile\'s auth.issuers, comma-separated (READER_AUTH_ISSUERS).')
param readerAuthIssuers string = ''

@description('Bearer mode: the profile\'s auth.audiences, comma-separated (READER_AUTH_AUDIENCES).')
param readerAuthAudiences string = ''

@description('Anonymous mode: the gateway\'s outbound public addresses (CIDR, e.g. API Management\'s public IP as x.x.x.x/32).')
param readerGatewayIpRanges array = []

@description('Anonymous mode: the gateway\'s subnets (with the Microsoft.Web service endpoint), e.g. API Management in a virtual network.')
param readerGatewaySubnetIds array = []

// An anonymous reader trusts whoever reaches it, so only the gateway may: every
// other source is denied (with no gateway given, every source: closed, never
// open). The other modes check each caller themselves.
var readerBehindGateway = readerAuth == 'anonymous'
var gatewayIpRules = [for (cidr, i) in readerGatewayIpRanges: {
  name: 'gateway-ip-${i}'
  action: 'Allow'
  priority: 100 + i
  ipAddress: cidr
}]
var gatewaySubnetRules = [for (subnet, i) in readerGatewaySubnetIds: {
  name: 'gateway-subnet-${i}'
  action: 'Allow'
  priority: 200 + i
  vnetSubnetResourceId: subnet
}]
var gatewayRules = concat(gatewayIpRules, gatewaySubnetRules)
var readerInbound = readerBehindGateway ? { defaultAction: 'Deny', rules: gatewayRules } : { defaultAction: 'Allow', rules: [] }

@description('Deploy the Azure Monitor workbook of the archive (docs/operations.md, "The dashboard").')
param deployWorkbook bool = true

@description('Where alerts are mailed.')
param alertEmail string
param reader5xxPercent int = 5
param readerP95Ms int = 2000
@minValue(2)
param partialRunsInARow int = 2

// Storage account names: 3-24 lowercase letters and digits.
var prefixAlnum = replace(toLower(namePrefix), '-', '')
var suffix = uniqueString(resourceGroup().id)

// Built-in role ids.
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var blobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var metricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// --- Archive storage ---------------------------------------------------------
// Cool tier: first byte in milliseconds (records must be served within seconds),
// at about half the price of Hot. Never the Archive tier, which needs hours of
// rehydration. Shared keys are off; both apps use their managed identities.
resource archiveStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take('${prefixAlnum}archive${suffix}', 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_ZRS' }
  properties: {
    accessTier: 'Cool'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource archiveBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: archiveStorage
  name: 'default'
  properties: {
    // Every overwrite or delete keeps the previous version (deleted by the
    // lifecycle rule below, previousVersionRetentionDays after it was written);
    // a deleted blob or version can be undeleted for blobSoftDeleteRetentionDays,
    // a deleted container for containerDeleteRetentionDays.
    isVersioningEnabled: true
    deleteRetentionPolicy: { enabled: true, days: blobSoftDeleteRetentionDays }
    containerDeleteRetentionPolicy: { enabled: true, days: containerDeleteRetentionDays }
  }
}

resource archiveBlobContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: archiveBlobService
  name: archiveContainer
  properties: { publicAccess: 'None' }
}

// One rule: previous versions are deleted previousVersionRetentionDays after they
// were written (then soft-deleted for blobSoftDeleteRetentionDays).
// Current blobs are never tiered or deleted by lifecycle management.
resource archiveLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: archiveStorage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-previous-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            actions: {
              version: { delete: { daysAfterCreationGreaterThan: previousVersionRetentionDays } }
            }
            filters: {
              blobTypes: ['blockBlob']
              prefixMatch: ['${archiveContainer}/']
            }
          }
        }
      ]
    }
  }
  // Versioning first: the rule is about previous versions.
  dependsOn: [archiveBlobService]
}

resource archiveLock 'Microsoft.Authorization/locks@2020-05-01' = {
  scope: archiveStorage
  name: 'archive-cannot-delete'
  properties: {
    level: 'CanNotDelete'
    notes: 'Holds the only copy of archived billing records: they are deleted from Cosmos DB once archived.'
  }
}

// The archiver's data role on the archive: read, write and delete blobs. No
// container delete, no permanent delete of versions or soft-deleted blobs.
resource archiveWriterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, namePrefix, 'billing-archive-writer')
  properties: {
    // Role names are unique in the tenant: the resource group's hash keeps two
    // environments with one prefix apart.
    roleName: 'Billing archive writer (${namePrefix}, ${uniqueString(resourceGroup().id)})'
    description: 'Reads, writes and deletes blobs of the billing archive.'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'
        ]
      }
    ]
  }
}

// With write-through, the reader moves archived records back before a write: it
// leases a copy, reads it and deletes it once the record is in Cosmos. Lease Blob
// needs blobs/write (Learn, "Permissions for Blob service operations"): the
// reader uses it for the lease only, never to upload or overwrite a blob.
resource archiveMoverRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (writeThrough) {
  name: guid(resourceGroup().id, namePrefix, 'billing-archive-mover')
  properties: {
    roleName: 'Billing archive mover (${namePrefix}, ${uniqueString(resourceGroup().id)})'
    description: 'Leases, reads and deletes blobs of the billing archive (write-through move-back).'
    type: 'CustomRole'
    assignableScopes: [resourceGroup().id]
    permissions: [
      {
        actions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'
        ]
      }
    ]
  }
}

// --- Monitoring -------------------------------------------------------------------
resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  properties: { retentionInDays: 30, sku: { name: 'PerGB2018' } }
}

// Local auth off: telemetry is accepted only from identities holding Monitoring
// Metrics Publisher (APPLICATIONINSIGHTS_AUTHENTICATION_STRING below).
resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-insights'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id, DisableLocalAuth: true }
}

module monitoring 'monitoring.bicep' = {
  name: '${namePrefix}-monitoring'
  params: {
    namePrefix: namePrefix
    location: location
    appInsightsId: insights.id
    alertEmail: alertEmail
    readerFunctionName: 'BillingRecords'
    archiverFunctionName: 'ArchiveBillingRecords'
    reader5xxPercent: reader5xxPercent
    readerP95Ms: readerP95Ms
    firstDeployed: firstDeployed
    partialRunsInARow: partialRunsInARow
  }
}

// --- Cosmos DB: referenced, never deployed ------------------------------------------
resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  scope: resourceGroup(cosmosResourceGroup)
  name: cosmosAccountName
}

// --- The dashboard: a workbook over the apps' own log lines and both tiers' size metrics.
// Its queries read the run summary and the reader's "read" lines; archiver/src/run.rs
// and reader/tests/dashboard.rs check every field they read against real lines.
var workbookData = replace(replace(replace(loadTextContent('workbook.json'),
  '__ARCHIVE_ACCOUNT_ID__', archiveStorage.id),
  '__COSMOS_ACCOUNT_ID__', cosmos.id),
  '__INSIGHTS_ID__', insights.id)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = if (deployWorkbook) {
  name: guid(resourceGroup().id, namePrefix, 'billing-archive-workbook')
  location: location
  kind: 'shared'
  properties: {
    displayName: 'Billing archive (${namePrefix})'
    category: 'workbook'
    sourceId: insights.id
    serializedData: workbookData
  }
}

// --- Function Apps -------------------------------------------------------------------
// Indexes into apps, and so into hostStorage, plans and sites.
var archiverIndex = 0
var readerIndex = 1

var apps = [
  {
    name: 'archiver'
    memoryMb: archiverInstanceMemoryMB
    // Flex's least maximum. The timer runs once at a time anyway: the host's
    // singleton lock, and the archiver's own run lease on the archive.
    maxInstances: 40
    alwaysReady: []
    inbound: { defaultAction: 'Allow', rules: [] }
    settings: concat([
      { name: 'ARCHIVE_AFTER_DAYS', value: string(archiveAfterDays) }
      { name: 'ARCHIVE_QUIET_DAYS', value: string(archiveQuietDays) }
      { name: 'ARCHIVE_RETENTION_DAYS', value: string(archiveRetentionDays) }
      { name: 'ARCHIVE_DRY_RUN', value: archiveDryRun ? 'true' : 'false' }
      { name: 'ARCHIVE_CONCURRENCY', value: archiveConcurrency }
      { name: 'ARCHIVE_MAX_RU_PER_SECOND', value: archiveMaxRuPerSecond }
      { name: 'ARCHIVE_RU_SHARE_PERCENT', value: string(archiveRuSharePercent) }
      { name: 'ARCHIVE_PRIORITY', value: archivePriority }
      // host.json's functionTimeout is 30 minutes; stop starting work at 25.
      { name: 'ARCHIVE_TIME_BUDGET_SECONDS', value: '1500' }
      { name: 'ARCHIVE_SCHEDULE', value: archiveSchedule }
      { name: 'AzureWebJobs.ArchiveBillingRecords.Disabled', value: archiverPaused ? 'true' : 'false' }
    ], (archiveContainerRuPerSecond > 0) ? [
      { name: 'ARCHIVE_CONTAINER_RU_PER_SECOND', value: string(archiveContainerRuPerSecond) }
    ] : [], (archiveThroughputBucket > 0) ? [
      { name: 'ARCHIVE_THROUGHPUT_BUCKET', value: string(archiveThroughputBucket) }
    ] : [])
  }
  {
    name: 'reader'
    memoryMb: readerInstanceMemoryMB
    maxInstances: readerMaximumInstanceCount
    alwaysReady: readerAlwaysReady > 0 ? [{ name: 'http', instanceCount: readerAlwaysReady }] : []
    inbound: readerInbound
    settings: concat([
      { name: 'READER_TIMEOUT_SECONDS', value: string(readerTimeoutSeconds) }
      { name: 'READER_PAGE_MAX_BYTES', value: string(readerPageMaxBytes) }
      { name: 'READER_AUTH', value: readerAuth }
      { name: 'READER_AUTH_ISSUERS', value: readerAuthIssuers }
      { name: 'READER_AUTH_AUDIENCES', value: readerAuthAudiences }
    ], writeThrough ? [{ name: 'READER_UPSTREAM_URL', value: readerUpstreamUrl }] : [])
  }
]

// Each app has its own host storage (AzureWebJobsStorage: timer locks, and the
// deployment package), so neither identity can touch the other's.
resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = [for app in apps: {
  name: take('${prefixAlnum}${app.name}${suffix}', 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}]

resource hostBlobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = [for (app, i) in apps: {
  parent: hostStorage[i]
  name: 'default'
}]

resource deployContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for (app, i) in apps: {
  parent: hostBlobServices[i]
  name: 'app-package'
  properties: { publicAccess: 'None' }
}]

resource plans 'Microsoft.Web/serverfarms@2024-04-01' = [for app in apps: {
  name: '${namePrefix}-${app.name}-plan'
  location: location
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}]

resource sites 'Microsoft.Web/sites@2024-11-01' = [for (app, i) in apps: {
  name: '${namePrefix}-${app.name}-${suffix}'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plans[i].id
    httpsOnly: true
    // For a Cosmos DB account (or archive account) with public network access off
    // or IP rules: both apps reach it through this subnet (delegated to
    // Microsoft.App/environments; private endpoints or service endpoints on the
    // account's side). Empty: the apps use public endpoints (docs/operations.md,
    // "Network-restricted accounts").
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    // The site update strategy is written through union(): Microsoft's
    // Microsoft.Web type data (and so the local type check) does not list
    // functionAppConfig.siteUpdateStrategy yet, while the service takes it
    // (learn.microsoft.com/azure/azure-functions/flex-consumption-site-updates:
    // API version 2023-12-01 or later; an earlier revision said 2024-11-01, which
    // this uses). deploy.sh reads it back after the deployment.
    functionAppConfig: union({
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage[i].properties.primaryEndpoints.blob}app-package'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        alwaysReady: app.alwaysReady
        maximumInstanceCount: app.maxInstances
        instanceMemoryMB: app.memoryMb
      }
      // Custom handler: the runtime is set here; FUNCTIONS_WORKER_RUNTIME is not accepted on Flex.
      runtime: { name: 'custom', version: '1.0' }
    }, { siteUpdateStrategy: { type: siteUpdateStrategy } })
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      // Who may reach the app (an anonymous reader: its gateway only). The
      // deployment endpoint (scm) keeps its own rules: deploy.sh reaches it, with Entra ID.
      ipSecurityRestrictionsDefaultAction: app.inbound.defaultAction
      ipSecurityRestrictions: app.inbound.rules
      scmIpSecurityRestrictionsUseMain: false
      appSettings: concat([
        // Identity-based host storage: no connection string.
        { name: 'AzureWebJobsStorage__accountName', value: hostStorage[i].name }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
        { name: 'COSMOS_ENDPOINT', value: cosmos.properties.documentEndpoint }
        { name: 'COSMOS_DATABASE', value: cosmosDatabase }
        { name: 'COSMOS_CONTAINER', value: cosmosContainer }
        { name: 'COSMOS_PARTITION_KEY', value: partitionKey }
        { name: 'ARCHIVE_BLOB_ENDPOINT', value: archiveStorage.properties.primaryEndpoints.blob }
        { name: 'ARCHIVE_CONTAINER', value: archiveContainer }
        { name: 'ARCHIVE_AGE_FIELD', value: ageField }
        { name: 'LOG_FORMAT', value: 'json' }
        // The Cosmos SDK asks the VM instance metadata service (169.254.169.254) when
        // its runtime starts, up to 5 s, unless this is set; a Functions instance has no
        // such service, so a cold start would pay the timeout before its first request
        // (azure_data_cosmos_driver 1.0, system/vm_metadata.rs: any value disables it).
        { name: 'COSMOS_DISABLE_IMDS', value: '1' }
      ], app.settings)
    }
  }
  dependsOn: [deployContainers[i]]
}]

// --- Role assignments: least privilege per app --------------------------------------
// Names are guid(scope, principal, role): a role change is a new assignment.

// Host storage: Blob Data Owner on the app's own account only (deployment
// package, timer locks).
resource hostStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (app, i) in apps: {
  scope: hostStorage[i]
  name: guid(hostStorage[i].id, sites[i].id, blobDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
    principalId: sites[i].identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

// Telemetry to Application Insights with local auth off.
resource insightsRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (app, i) in apps: {
  scope: insights
  name: guid(insights.id, sites[i].id, metricsPublisher)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', metricsPublisher)
    principalId: sites[i].identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

// The archive: the archiver writes and deletes blobs; the reader only reads them.
resource archiverArchiveRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: archiveBlobContainer
  name: guid(archiveBlobContainer.id, sites[archiverIndex].id, archiveWriterRole.id)
  properties: {
    roleDefinitionId: archiveWriterRole.id
    principalId: sites[archiverIndex].identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource readerArchiveRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: archiveBlobContainer
  name: guid(archiveBlobContainer.id, sites[readerIndex].id, blobDataReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataReader)
    principalId: sites[readerIndex].identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Write-through only: the reader may also delete the copy of a record it moved back.
// Turning write-through off again leaves this assignment (and the Cosmos one) in
// place until removed by hand (docs/deployment.md, "Write-through").
resource readerMoveBackRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (writeThrough) {
  scope: archiveBlobContainer
  name: guid(archiveBlobContainer.id, sites[readerIndex].id, 'billing-archive-mover')
  properties: {
    roleDefinitionId: archiveMoverRole.id
    principalId: sites[readerIndex].identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Cosmos DB data plane, on the container only: the archiver queries, reads and
// deletes (a custom role); the reader only reads (built-in Data Reader), and with
// write-through may also create items (a second custom role).
module cosmosRoles 'cosmos-roles.bicep' = {
  name: '${namePrefix}-cosmos-roles'
  scope: resourceGroup(cosmosResourceGroup)
  params: {
    accountName: cosmosAccountName
    databaseName: cosmosDatabase
    containerName: cosmosContainer
    archiverPrincipalId: sites[archiverIndex].identity.principalId
    readerPrincipalId: sites[readerIndex].identity.principalId
    readerMovesBack: writeThrough
  }
}

output archiverApp string = sites[archiverIndex].name
output readerApp string = sites[readerIndex].name
output readerHostName string = sites[readerIndex].properties.defaultHostName
output archiveBlobEndpoint string = archiveStorage.properties.primaryEndpoints.blob
output archiveStorageAccount string = archiveStorage.name
