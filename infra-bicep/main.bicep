// The billing archive: archive storage, the Cosmos container's listing index, and
// the two Function Apps (archiver, reader) on Flex Consumption with managed
// identities holding only the data roles each one needs.
//
//   az deployment group create -g <rg> -f infra-bicep/main.bicep \
//     -p cosmosAccountName=<existing account> namePrefix=<short prefix>
//
// The Cosmos DB account and database already exist (they hold the live billing
// data); this template adds nothing there but the container definition with the
// composite index the reader's list query needs (ORDER BY <age> DESC, id ASC).

@description('Short lowercase prefix for new resource names.')
@minLength(3)
@maxLength(11)
param namePrefix string

param location string = resourceGroup().location

@description('The existing Cosmos DB (NoSQL) account holding the billing records.')
param cosmosAccountName string
param cosmosDatabase string = 'billing'
param cosmosContainer string = 'records'

@description('The field that dates a record: _ts or a top-level ISO-8601 date field.')
param ageField string = '_ts'
param archiveAfterDays int = 90
param archiveContainer string = 'billing-archive'

@description('Request units per second the nightly archiver may spend; 0 = unlimited.')
param archiveMaxRuPerSecond int = 0

@description('Records in flight at once in the archiver.')
param archiveConcurrency int = 4

var archiveStorageName = toLower('${namePrefix}archive${uniqueString(resourceGroup().id)}')
var hostStorageName = toLower('${namePrefix}host${uniqueString(resourceGroup().id)}')

// Built-in role ids.
var blobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var cosmosDataReader = '00000000-0000-0000-0000-000000000001'
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

// --- Archive storage ---------------------------------------------------------
// Cool tier: first byte in milliseconds (records must be served within seconds),
// at about half the price of Hot. Never the Archive tier, which needs hours of
// rehydration. Shared keys are off; both apps use their managed identities.
resource archiveStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take(archiveStorageName, 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_ZRS' }
  properties: {
    accessTier: 'Cool'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource archiveBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: archiveStorage
  name: 'default'
  properties: {
    // A deleted or overwritten archive blob can be recovered for 30 days.
    deleteRetentionPolicy: { enabled: true, days: 30 }
    isVersioningEnabled: true
  }
}

resource archiveBlobContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: archiveBlobService
  name: archiveContainer
  properties: { publicAccess: 'None' }
}

// --- Cosmos DB container: the listing index ------------------------------------
resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = {
  name: cosmosAccountName
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' existing = {
  parent: cosmos
  name: cosmosDatabase
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: cosmosContainer
  properties: {
    resource: {
      id: cosmosContainer
      partitionKey: { paths: ['/customerId'], kind: 'Hash' }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [{ path: '/*' }]
        compositeIndexes: [
          [
            { path: '/${ageField}', order: 'descending' }
            { path: '/id', order: 'ascending' }
          ]
        ]
      }
    }
  }
}

// --- Function Apps ---------------------------------------------------------------
resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take(hostStorageName, 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
  }
}

resource hostBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: hostStorage
  name: 'default'
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  properties: { retentionInDays: 30, sku: { name: 'PerGB2018' } }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-insights'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id, DisableLocalAuth: true }
}

var apps = [
  {
    name: 'archiver'
    // The timer is a singleton; one instance with room for records in flight.
    maxInstances: 1
    memoryMb: 2048
    settings: [
      { name: 'ARCHIVE_AFTER_DAYS', value: string(archiveAfterDays) }
      { name: 'ARCHIVE_DRY_RUN', value: 'false' }
      { name: 'ARCHIVE_CONCURRENCY', value: string(archiveConcurrency) }
      { name: 'ARCHIVE_MAX_RU_PER_SECOND', value: string(archiveMaxRuPerSecond) }
      // host.json's functionTimeout is 30 minutes; stop starting work at 25.
      { name: 'ARCHIVE_TIME_BUDGET_SECONDS', value: '1500' }
    ]
  }
  {
    name: 'reader'
    maxInstances: 40
    memoryMb: 512
    settings: []
  }
]

resource plans 'Microsoft.Web/serverfarms@2024-04-01' = [for app in apps: {
  name: '${namePrefix}-${app.name}-plan'
  location: location
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}]

resource deployContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for app in apps: {
  parent: hostBlobService
  name: '${app.name}-deployment'
}]

resource sites 'Microsoft.Web/sites@2024-04-01' = [for (app, i) in apps: {
  name: '${namePrefix}-${app.name}'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plans[i].id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${app.name}-deployment'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: app.maxInstances, instanceMemoryMB: app.memoryMb }
      // Custom handler: the runtime is set here; FUNCTIONS_WORKER_RUNTIME is not accepted on Flex.
      runtime: { name: 'custom', version: '1.0' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: concat([
        { name: 'AzureWebJobsStorage__accountName', value: hostStorage.name }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
        { name: 'COSMOS_ENDPOINT', value: cosmos.properties.documentEndpoint }
        { name: 'COSMOS_DATABASE', value: cosmosDatabase }
        { name: 'COSMOS_CONTAINER', value: cosmosContainer }
        { name: 'ARCHIVE_BLOB_ENDPOINT', value: archiveStorage.properties.primaryEndpoints.blob }
        { name: 'ARCHIVE_CONTAINER', value: archiveContainer }
        { name: 'ARCHIVE_AGE_FIELD', value: ageField }
        { name: 'LOG_FORMAT', value: 'json' }
      ], app.settings)
    }
  }
  dependsOn: [deployContainers[i]]
}]

// --- Role assignments: least privilege per app --------------------------------------
// The functions runtime needs its own storage (timer locks, deployment packages).
resource hostStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (app, i) in apps: {
  scope: hostStorage
  name: guid(hostStorage.id, sites[i].id, blobDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
    principalId: sites[i].identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

// The archiver writes and deletes archive blobs; the reader only reads them.
resource archiveRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (app, i) in apps: {
  scope: archiveBlobContainer
  name: guid(archiveBlobContainer.id, sites[i].id)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', app.name == 'archiver' ? blobDataContributor : blobDataReader)
    principalId: sites[i].identity.principalId
    principalType: 'ServicePrincipal'
  }
}]

// Cosmos data-plane RBAC: the archiver queries and deletes; the reader only reads.
resource cosmosRoles 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = [for (app, i) in apps: {
  parent: cosmos
  name: guid(cosmos.id, sites[i].id)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${app.name == 'archiver' ? cosmosDataContributor : cosmosDataReader}'
    principalId: sites[i].identity.principalId
    scope: '${cosmos.id}/dbs/${cosmosDatabase}/colls/${cosmosContainer}'
  }
}]

output archiverApp string = sites[0].name
output readerApp string = sites[1].name
output archiveBlobEndpoint string = archiveStorage.properties.primaryEndpoints.blob
