#!/usr/bin/env python3
"""Proves scripts/checks/infra.py still bites: each mutation below undoes one promise in a copy of
infra-bicep/, and infra.py must fail on it, naming the rule that guards that promise.

    scripts/checks/.venv/bin/python scripts/checks/infra_mutations.py [-v]

A mutation is (rule, file, old text, new text); the old text must occur exactly once, so a template
change that moves it is reported rather than silently skipped.
"""
import contextlib
import functools
import io
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import infra  # noqa: E402

M, C, MON = "main.bicep", "cosmos-roles.bicep", "monitoring.bicep"
SETTING = "{ name: 'LOG_FORMAT', value: 'json' }"
EXTRA_ROLE = """
resource extraRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: archiveStorage
  name: guid(archiveStorage.id, sites[readerIndex].id, 'contributor')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataOwner)
    principalId: sites[readerIndex].identity.principalId
  }
}
"""
MUTATIONS = [
    ("no Cosmos DB account", C, "output documentEndpoint",
     "resource db 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {\n  parent: account\n"
     "  name: databaseName\n  properties: { resource: { id: databaseName } }\n}\noutput documentEndpoint"),
    ("no Cosmos DB account", M, "@2024-11-15' existing = {", "@2024-11-15' = {"),
    ("no Cosmos DB account", C, "scope: containerScope\n  }\n  dependsOn: [archiverRole]",
     "scope: containerScope\n    partitionKey: { paths: ['/id'] }\n  }\n  dependsOn: [archiverRole]"),
    ("no Cosmos DB account", M, "module monitoring 'monitoring.bicep'", "module monitoring 'other.bicep'"),
    ("Cosmos DB archiver role", C, "items/delete'\n", "items/delete'\n          '"
     "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/replace'\n"),
    ("Cosmos DB archiver role", C, "archiver (${databaseName}/${containerName})'\n    type: 'CustomRole'\n"
     "    assignableScopes: [containerScope]", "archiver (${databaseName}/${containerName})'\n    type: 'CustomRole'\n"
     "    assignableScopes: [account.id]"),
    ("Cosmos DB archiver role", M, "containerName: cosmosContainer", "containerName: 'other'"),
    ("Cosmos DB assignments", C, "roleDefinitionId: readerRoleId", "roleDefinitionId: archiverRoleId"),
    ("Cosmos DB assignments", C, "0000-000000000001'", "0000-000000000002'"),
    ("Cosmos DB assignments", C, "roleDefinitionId: readerRoleId\n    principalId: readerPrincipalId",
     "roleDefinitionId: readerRoleId\n    principalId: archiverPrincipalId"),
    ("Cosmos DB assignments", C, "roleDefinitionId: archiverRoleId\n    principalId: archiverPrincipalId\n"
     "    scope: containerScope", "roleDefinitionId: archiverRoleId\n    principalId: archiverPrincipalId\n"
     "    scope: '${account.id}/dbs/${databaseName}'"),
    ("serialized", C, "  dependsOn: [archiverAssignment]\n", ""),
    ("serialized", C, "  dependsOn: [archiverRole]\n", ""),
    ("`existing` in resourceGroup", M, "  scope: resourceGroup(cosmosResourceGroup)\n  name: cosmosAccountName",
     "  name: cosmosAccountName"),
    ("`existing` in resourceGroup", M, "  scope: resourceGroup(cosmosResourceGroup)\n  params:", "  params:"),
    ("`existing` in resourceGroup", M, "accountName: cosmosAccountName", "accountName: 'billing-cosmos'"),
    ("`existing` in resourceGroup", C, "existing = {\n  name: accountName",
     "existing = {\n  scope: resourceGroup('data-rg')\n  name: accountName"),
    ("archive writer role", M, "billing archive.'\n    type: 'CustomRole'\n    assignableScopes: [resourceGroup().id]\n"
     "    permissions: [\n      {\n        actions: []", "billing archive.'\n    type: 'CustomRole'\n    assignableScopes: "
     "[resourceGroup().id]\n    permissions: [\n      {\n        actions: ['Microsoft.Storage/storageAccounts/"
     "blobServices/containers/delete']"),
    ("archive writer role", M, "blobs/add/action'\n          'Microsoft.Storage/storageAccounts/blobServices/containers/"
     "blobs/delete'\n", "blobs/add/action'\n          'Microsoft.Storage/storageAccounts/blobServices/containers/"
     "blobs/delete'\n          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/deleteBlobVersion/action'\n"),
    # Write-through: the reader's extra roles, exactly, and only with readerUpstreamUrl.
    ("archive mover role is exactly", M, "blobs/write'\n          'Microsoft.Storage/storageAccounts/blobServices/"
     "containers/blobs/delete'\n        ]", "blobs/write'\n          'Microsoft.Storage/storageAccounts/blobServices/"
     "containers/blobs/delete'\n          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'\n        ]"),
    ("no other Azure role", M, "resource readerMoveBackRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = "
     "if (writeThrough) {", "resource readerMoveBackRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {"),
    ("archive mover role on the archive", M, "roleDefinitionId: archiveMoverRole.id\n    principalId: sites[readerIndex]",
     "roleDefinitionId: archiveMoverRole.id\n    principalId: sites[archiverIndex]"),
    ("move-back role is exactly", C, "containers/items/create'\n", "containers/items/create'\n          "
     "'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers/items/replace'\n"),
    ("move-back role is exactly", M, "readerMovesBack: writeThrough", "readerMovesBack: true"),
    ("Cosmos DB assignments", C, "resource moveBackAssignment 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"
     "@2024-11-15' = if (readerMovesBack) {", "resource moveBackAssignment 'Microsoft.DocumentDB/databaseAccounts/"
     "sqlRoleAssignments@2024-11-15' = {"),
    ("Cosmos DB assignments", C, "roleDefinitionId: moveBackRoleId\n    principalId: readerPrincipalId",
     "roleDefinitionId: moveBackRoleId\n    principalId: archiverPrincipalId"),
    ("serialized", C, "  dependsOn: [readerAssignment]\n", ""),
    ("READER_UPSTREAM_URL", M, "writeThrough ? [{ name: 'READER_UPSTREAM_URL', value: readerUpstreamUrl }] : []",
     "[{ name: 'READER_UPSTREAM_URL', value: readerUpstreamUrl }]"),
    ("READER_UPSTREAM_URL", M, "param readerUpstreamUrl string = ''",
     "param readerUpstreamUrl string = 'https://billing.example.com'"),
    ("READER_UPSTREAM_URL", M, "var writeThrough = !empty(readerUpstreamUrl)", "var writeThrough = true"),
    ("reader auth", M, "{ defaultAction: 'Deny', rules: gatewayRules }", "{ defaultAction: 'Allow', rules: gatewayRules }"),
    ("reader auth", M, "    inbound: readerInbound\n", "    inbound: { defaultAction: 'Allow', rules: [] }\n"),
    ("reader auth", M, "ipSecurityRestrictionsDefaultAction: app.inbound.defaultAction",
     "ipSecurityRestrictionsDefaultAction: 'Allow'"),
    ("reader auth", M, "ipSecurityRestrictions: app.inbound.rules", "ipSecurityRestrictions: []"),
    ("reader auth", M, "var readerBehindGateway = readerAuth == 'anonymous'", "var readerBehindGateway = false"),
    ("reader auth", M, "var gatewayRules = concat(gatewayIpRules, gatewaySubnetRules)",
     "var gatewayRules = concat(gatewayIpRules, gatewaySubnetRules, [{ name: 'all', action: 'Allow', priority: 1, "
     "ipAddress: '0.0.0.0/0' }])"),
    ("reader auth", M, "  priority: 100 + i\n  ipAddress: cidr", "  priority: 100 + i\n  ipAddress: '0.0.0.0/0'"),
    ("reader auth", M, "{ name: 'READER_AUTH', value: readerAuth }", "{ name: 'READER_AUTH', value: 'function-key' }"),
    ("reader auth", M, "param readerAuth string = 'function-key'", "param readerAuth string = 'anonymous'"),
    ("dashboard", M, "param deployWorkbook bool = true", "param deployWorkbook bool = false"),
    ("dashboard", M, "'__COSMOS_ACCOUNT_ID__', cosmos.id)", "'__COSMOS_ACCOUNT_ID__', archiveStorage.id)"),
    ("dashboard", M, "= if (deployWorkbook) {", "= if (false) {"),
    ("dashboard", M, "    sourceId: insights.id\n    serializedData", "    sourceId: logs.id\n    serializedData"),
    ("archiver: the archive writer role", M, "scope: archiveBlobContainer\n  name: guid(archiveBlobContainer.id, "
     "sites[archiverIndex]", "scope: archiveStorage\n  name: guid(archiveBlobContainer.id, sites[archiverIndex]"),
    ("reader: Storage Blob Data Reader", M, "'Microsoft.Authorization/roleDefinitions', blobDataReader)",
     "'Microsoft.Authorization/roleDefinitions', blobDataOwner)"),
    ("Storage Blob Data Owner on its own", M, "scope: hostStorage[i]", "scope: hostStorage[0]"),
    ("Monitoring Metrics Publisher", M, "principalId: sites[i].identity.principalId\n    principalType: "
     "'ServicePrincipal'\n  }\n}]\n\n// The archive", "principalId: sites[0].identity.principalId\n    "
     "principalType: 'ServicePrincipal'\n  }\n}]\n\n// The archive"),
    ("no other Azure role", M, "// Cosmos DB data plane", EXTRA_ROLE + "// Cosmos DB data plane"),
    ("no other Azure role", MON, "resource actionGroup",
     "resource extraRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  name: guid('x')\n"
     "  properties: {\n    roleDefinitionId: 'b24988ac-6180-42a0-ab88-20f7382dd24c'\n    principalId: alertEmail\n"
     "  }\n}\n"
     "resource actionGroup"),
    ("every storage account", M, "allowSharedKeyAccess: false\n    defaultToOAuthAuthentication: true\n    "
     "minimumTlsVersion: 'TLS1_2'\n    supportsHttpsTrafficOnly: true\n  }\n}]", "allowSharedKeyAccess: true\n"
     "    defaultToOAuthAuthentication: true\n    minimumTlsVersion: 'TLS1_2'\n    supportsHttpsTrafficOnly: true\n"
     "  }\n}]"),
    ("every storage account", M, "accessTier: 'Cool'\n    allowBlobPublicAccess: false",
     "accessTier: 'Cool'\n    allowBlobPublicAccess: true"),
    ("every storage account", M, "accessTier: 'Cool'\n    allowBlobPublicAccess: false\n    allowSharedKeyAccess: "
     "false\n    defaultToOAuthAuthentication: true\n    minimumTlsVersion: 'TLS1_2'", "accessTier: 'Cool'\n    "
     "allowBlobPublicAccess: false\n    allowSharedKeyAccess: false\n    defaultToOAuthAuthentication: true\n"
     "    minimumTlsVersion: 'TLS1_0'"),
    ("one host storage account", M, "value: hostStorage[i].name", "value: hostStorage[0].name"),
    ("one host storage account", M, "value: hostStorage[i].name", "value: archiveStorage.name"),
    ("archive: Cool tier", M, "accessTier: 'Cool'", "accessTier: 'Archive'"),
    ("archive: Cool tier", M, "accessTier: 'Cool'", "accessTier: 'Hot'"),
    ("archive: Cool tier", M, "sku: { name: 'Standard_ZRS' }", "sku: { name: 'Standard_LRS' }"),
    ("archive: Cool tier", M, "version: { delete:",
     "baseBlob: { tierToArchive: { daysAfterModificationGreaterThan: 30 } }\n              version: { delete:"),
    ("soft delete", M, "isVersioningEnabled: true", "isVersioningEnabled: false"),
    ("soft delete", M, "deleteRetentionPolicy: { enabled: true, days: blobSoftDeleteRetentionDays }",
     "deleteRetentionPolicy: { enabled: false }"),
    ("soft delete", M, "containerDeleteRetentionPolicy: { enabled: true",
     "containerDeleteRetentionPolicy: { enabled: false"),
    ("soft delete retention", M, "param blobSoftDeleteRetentionDays int = 30",
     "param blobSoftDeleteRetentionDays int = 2"),
    ("soft delete retention", M, "deleteRetentionPolicy: { enabled: true, days: blobSoftDeleteRetentionDays }",
     "deleteRetentionPolicy: { enabled: true, days: 1 }"),
    ("soft delete retention", M, ", days: containerDeleteRetentionDays }", " }"),
    ("soft delete retention", M, "param containerDeleteRetentionDays int = 30",
     "param containerDeleteRetentionDays int = 3"),
    ("soft delete retention", M, "@minValue(1)\n@maxValue(365)\nparam containerDeleteRetentionDays",
     "@minValue(0)\n@maxValue(365)\nparam containerDeleteRetentionDays"),
    ("lifecycle", M, "version: { delete:",
     "baseBlob: { delete: { daysAfterModificationGreaterThan: 365 } }\n              version: { delete:"),
    ("lifecycle", M, "version: { delete: { daysAfterCreationGreaterThan: previousVersionRetentionDays } }",
     "version: { tierToCool: { daysAfterCreationGreaterThan: previousVersionRetentionDays } }"),
    ("lifecycle", M, "resource archiveLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {\n"
     "  parent: archiveStorage", "resource archiveLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies"
     "@2023-05-01' = {\n  parent: hostStorage[0]"),
    ("after previousVersionRetentionDays", M, "param previousVersionRetentionDays int = 90",
     "param previousVersionRetentionDays int = 1"),
    ("after previousVersionRetentionDays", M, "@minValue(1)\nparam previousVersionRetentionDays",
     "@minValue(0)\nparam previousVersionRetentionDays"),
    ("after previousVersionRetentionDays", M, "{ daysAfterCreationGreaterThan: previousVersionRetentionDays }",
     "{ daysAfterCreationGreaterThan: 0 }"),
    ("after previousVersionRetentionDays", M, "enabled: true\n          type: 'Lifecycle'",
     "enabled: false\n          type: 'Lifecycle'"),
    ("CanNotDelete lock", M, "level: 'CanNotDelete'", "level: 'ReadOnly'"),
    ("CanNotDelete lock", M, "  scope: archiveStorage\n  name: 'archive-cannot-delete'",
     "  scope: hostStorage[0]\n  name: 'archive-cannot-delete'"),
    ("Application Insights: local auth off", M, "DisableLocalAuth: true", "DisableLocalAuth: false"),
    ("workspace-based", M, "WorkspaceResourceId: logs.id, ", ""),
    ("workspace-based", M, "workspaces@2023-09-01' = {", "workspaces@2023-09-01' existing = {"),
    ("deploys monitoring.bicep", M, "module monitoring 'monitoring.bicep' = {",
     "module monitoring 'monitoring.bicep' = if (archiveDryRun) {"),
    ("deploys monitoring.bicep", M, "param alertEmail string\n", "param alertEmail string = 'ops@example.com'\n"),
    ("deploys monitoring.bicep", M, "    alertEmail: alertEmail\n", "    alertEmail: 'ops@example.com'\n"),
    ("deploys monitoring.bicep", M, "appInsightsId: insights.id", "appInsightsId: logs.id"),
    ("scheduled-query rules", MON, "  {\n    name: 'reader-latency'",  # four alerts left in the loop's array
     "]\nvar more = [\n  {\n    name: 'reader-latency'"),
    ("scheduled-query rules", MON, "emailAddress: alertEmail", "emailAddress: 'ops@example.com'"),
    ("scheduled-query rules", MON, "groupShortName: 'billingarch'\n    enabled: true",
     "groupShortName: 'billingarch'\n    enabled: false"),
    ("scheduled-query rules", MON, "actions: { actionGroups: [actionGroup.id] }", "actions: { actionGroups: [] }"),
    ("scheduled-query rules", MON, "scopes: [appInsightsId]", "scopes: [resourceGroup().id]"),
    ("scheduled-query rules", MON, "    enabled: true\n    scopes", "    enabled: false\n    scopes"),
    ("Flex Consumption", M, "sku: { tier: 'FlexConsumption', name: 'FC1' }", "sku: { tier: 'Dynamic', name: 'Y1' }"),
    ("Flex Consumption", M, "runtime: { name: 'custom', version: '1.0' }", "runtime: { name: 'node', version: '20' }"),
    ("Flex Consumption", M, "identity: { type: 'SystemAssigned' }", "identity: { type: 'None' }"),
    ("Flex Consumption", M, "serverFarmId: plans[i].id", "serverFarmId: plans[0].id"),
    ("Flex Consumption", M, "httpsOnly: true", "httpsOnly: false"),
    ("Flex Consumption", M, "ftpsState: 'Disabled'", "ftpsState: 'AllAllowed'"),
    ("each app has the settings", M, SETTING + "\n", ""),
    ("each app has the settings", M, "{ name: 'ARCHIVE_SCHEDULE', value: archiveSchedule }\n", ""),
    ("each app has the settings", M, "{ name: 'ARCHIVE_QUIET_DAYS', value: string(archiveQuietDays) }\n", ""),
    ("both apps on the archive account", M, "{ name: 'ARCHIVE_SCHEDULE', value: archiveSchedule }\n",  # the
     "{ name: 'ARCHIVE_SCHEDULE', value: archiveSchedule }\n"  # archiver's own settings come last and win
     "      { name: 'ARCHIVE_BLOB_ENDPOINT', value: hostStorage[archiverIndex].properties.primaryEndpoints.blob }\n"),
    ("both apps on the archive account", M, "value: archiveStorage.properties.primaryEndpoints.blob }",
     "value: hostStorage[i].properties.primaryEndpoints.blob }"),
    ("both apps on the archive account", M, "{ name: 'ARCHIVE_CONTAINER', value: archiveContainer }",
     "{ name: 'ARCHIVE_CONTAINER', value: 'billing' }"),
    ("both apps on the archive account", M, "value: cosmos.properties.documentEndpoint",
     "value: 'https://other.documents.azure.com:443/'"),
    ("both apps on the archive account", M, "value: insights.properties.ConnectionString",
     "value: 'InstrumentationKey=x'"),
    ("both apps on the archive account", M, "'Authorization=AAD'", "''"),
    ("both apps on the archive account", M, SETTING, "{ name: 'LOG_FORMAT', value: 'text' }"),
    ("dry run by default", M, "param archiveDryRun bool = true", "param archiveDryRun bool = false"),
    ("dry run by default", M, "value: archiveDryRun ? 'true' : 'false'", "value: 'false'"),
    ("no secrets", M, SETTING, SETTING + "\n        { name: 'COSMOS_KEY', value: cosmos.listKeys().primaryMasterKey }"),
    ("no secrets", M, SETTING, SETTING + "\n        { name: 'ARCHIVE_BLOB_SAS', value: 'sv=2022&sig=abc' }"),
    ("no secrets", M, SETTING, SETTING + "\n        { name: 'AzureWebJobsStorage', value: "
     "'DefaultEndpointsProtocol=https;AccountName=${hostStorage[i].name};AccountKey=${hostStorage[i].listKeys()"
     ".keys[0].value}' }"),
    ("no secrets", M, SETTING, SETTING + "\n        { name: 'STORAGE', value: 'BlobEndpoint=x;AccountKey=y' }"),
    ("no secrets", M, "output archiveStorageAccount", "output k string = archiveStorage.listKeys().keys[0].value\n"
     "output archiveStorageAccount"),
    ("outputs scripts/deploy.sh reads", M, "output readerApp string = sites[readerIndex].name",
     "output readerApp string = sites[archiverIndex].name"),
    ("outputs scripts/deploy.sh reads", M, "output readerHostName string", "output readerHost string"),
    ("deploys without downtime", M, "param siteUpdateStrategy string = 'RollingUpdate'",
     "param siteUpdateStrategy string = 'Recreate'"),
    ("deploys without downtime", M, "}, { siteUpdateStrategy: { type: siteUpdateStrategy } })", "}, {})"),
    ("deploys without downtime", M, "}, { siteUpdateStrategy: { type: siteUpdateStrategy } })",
     "}, { siteUpdateStrategy: { type: 'Recreate' } })"),
    ("deploys without downtime", M, "param readerAlwaysReady int = 2", "param readerAlwaysReady int = 0"),
    ("deploys without downtime", M, "param readerAlwaysReady int = 2", "param readerAlwaysReady int = 1"),
    ("deploys without downtime", M, "instanceCount: readerAlwaysReady }]", "instanceCount: 1 }]"),
    ("the \"no run\" alert waits", MON, "(isnull(last) and now() > todatetime(\\'${firstDeployed}\\') + 26h) or last",
     "isnull(last) or last"),
    ("the \"no run\" alert waits", M, "param deployedAt string = utcNow('o')", "param deployedAt string = ''"),
    ("the \"no run\" alert waits", M, "    firstDeployed: firstDeployed\n", "    firstDeployed: deployedAt\n"),
    ("the \"no run\" alert waits", M, "groupTags[firstDeployedTag] : deployedAt", "deployedAt : deployedAt"),
    ("the \"no run\" alert waits", M, "tags: union(groupTags, { '${firstDeployedTag}': firstDeployed })",
     "tags: union(groupTags, { '${firstDeployedTag}': deployedAt })"),
    ("deploys without downtime", M, "alwaysReady: readerAlwaysReady > 0 ?", "alwaysReady: readerAlwaysReady > 5 ?"),
    ("shares the container's throughput", M, "param archiveMaxRuPerSecond string = 'auto'",
     "param archiveMaxRuPerSecond string = '0'"),
    ("shares the container's throughput", M, "value: archiveMaxRuPerSecond }", "value: '0' }"),
    ("shares the container's throughput", M, "param archivePriority string = 'low'", "param archivePriority string = 'high'"),
    ("shares the container's throughput", M, "{ name: 'ARCHIVE_PRIORITY', value: archivePriority }\n", ""),
    ("shares the container's throughput", M, "  'low'\n  'high'\n])\nparam archivePriority",
     "  'low'\n  'high'\n  'highest'\n])\nparam archivePriority"),
]


def main():
    verbose = "-v" in sys.argv
    src = os.path.join(infra.ROOT, "infra-bicep")
    infra.PARSER.parse = functools.lru_cache(maxsize=None)(infra.PARSER.parse)  # unchanged templates parse once
    with contextlib.redirect_stdout(io.StringIO()):
        if infra.run(src) != 0:
            sys.exit("infra-mutations: infra.py fails on infra-bicep/ itself; fix that first")
    bad = 0
    for rule, name, old, new in MUTATIONS:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
            path = os.path.join(tmp, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            gone = [ln.strip() for ln in old.splitlines() if ln.strip() and ln not in new.splitlines()] or ["(nothing)"]
            added = [ln.strip() for ln in new.splitlines() if ln.strip() and ln not in old.splitlines()] or ["(nothing)"]
            what = f"{name}: {gone[0][:50]!r} -> {added[0][:70]!r}"
            if text.count(old) != 1:
                print(f"FAIL {rule} <- {what}: the old text occurs {text.count(old)} times, not once")
                bad += 1
                continue
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = infra.run(tmp)
        failed = [title for title, _ in infra.RULES
                  if f"FAIL {title}:" in out.getvalue() or f"FAIL {title} [write-through on]:" in out.getvalue()]
        ok = rc == 1 and any(rule in f for f in failed)
        bad += not ok
        shown = f"\n      failed: {failed}" if verbose or not ok else ""
        print(f"{'ok  ' if ok else 'FAIL'} {rule} <- {what}{shown}")
    print(f"\ninfra-mutations: {len(MUTATIONS) - bad} of {len(MUTATIONS)} mutations caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
