// Cosmos DB data-plane roles of the two apps, on the billing container only.
// Deployed by main.bicep into the Cosmos account's resource group.
//
// Adds a role definition and two role assignments to the existing account (one
// more of each with readerMovesBack) and nothing else: the account, database and container are never deployed (a PUT
// of the live container could change its partition key or indexing policy).

@description('The existing Cosmos DB (NoSQL) account.')
param accountName string
param databaseName string
param containerName string

@description('Principal id of the archiver app\'s system-assigned identity.')
param archiverPrincipalId string

@description('Principal id of the reader app\'s system-assigned identity.')
param readerPrincipalId string

@description('Write-through: the reader also creates items (a record moved back from the archive).')
param readerMovesBack bool = false

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: accountName
}

var containerScope = '${account.id}/dbs/${databaseName}/colls/${containerName}'
var archiverRoleName = guid(account.id, containerScope, 'billing-archiver')
var archiverRoleId = '${account.id}/sqlRoleDefinitions/${archiverRoleName}'
// Cosmos DB Built-in Data Reader.
var readerRoleId = '${account.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000001'
var moveBackRoleName = guid(account.id, containerScope, 'billing-reader-move-back')
var moveBackRoleId = '${account.id}/sqlRoleDefinitions/${moveBackRoleName}'

// The archiver queries the container, reads and deletes
// items. It never creates, replaces or patches one.
resource archiverRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions@2024-11-15' = {
  parent: account
  name: archiverRoleName
  properties: {
    roleName: 'Billing archiver (${databaseName}/${containerName})'
    type: 'CustomRole'
    assignableScopes: [containerScope]
    permissions: [
      {
        dataActions: [
          'Microsoft.DocumentDB/databaseAccounts/readMetadata'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/executeQuery'
          // "To perform NoSQL queries using the SDKs, you must have both executeQuery and
          // readChangeFeed" (Learn, "Azure Cosmos DB for NoSQL data plane actions reference").
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/readChangeFeed'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/read'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/delete'
        ]
      }
    ]
  }
}

// Role definitions and assignments take the account's exclusive lock: run in
// parallel they fail with 412, so each waits for the one before.
resource archiverAssignment 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: account
  name: guid(account.id, archiverPrincipalId, archiverRoleId)
  properties: {
    roleDefinitionId: archiverRoleId
    principalId: archiverPrincipalId
    scope: containerScope
  }
  dependsOn: [archiverRole]
}

resource readerAssignment 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: account
  name: guid(account.id, readerPrincipalId, readerRoleId)
  properties: {
    roleDefinitionId: readerRoleId
    principalId: readerPrincipalId
    scope: containerScope
  }
  dependsOn: [archiverAssignment]
}

// Write-through: on top of Data Reader, create only (a move-back never replaces,
// patches or deletes an item; the writes themselves go to the team's own API).
resource moveBackRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions@2024-11-15' = if (readerMovesBack) {
  parent: account
  name: moveBackRoleName
  properties: {
    roleName: 'Billing reader move-back (${databaseName}/${containerName})'
    type: 'CustomRole'
    assignableScopes: [containerScope]
    permissions: [
      {
        dataActions: [
          'Microsoft.DocumentDB/databaseAccounts/readMetadata'
          'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/create'
        ]
      }
    ]
  }
  dependsOn: [readerAssignment]
}

resource moveBackAssignment 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = if (readerMovesBack) {
  parent: account
  name: guid(account.id, readerPrincipalId, moveBackRoleId)
  properties: {
    roleDefinitionId: moveBackRoleId
    principalId: readerPrincipalId
    scope: containerScope
  }
  dependsOn: [moveBackRole]
}

output documentEndpoint string = account.properties.documentEndpoint
