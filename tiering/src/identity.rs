//! Managed Identity for both stores when no emulator key or SAS is configured.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};

use crate::settings::StoreSettings;

/// The app's managed identity: user-assigned when `AZURE_CLIENT_ID` is set, else system-assigned.
pub fn credential(settings: &StoreSettings) -> anyhow::Result<Arc<dyn TokenCredential>> {
    let options = settings.azure_client_id.as_ref().map(|id| ManagedIdentityCredentialOptions {
        user_assigned_id: Some(UserAssignedId::ClientId(id.clone())),
        ..Default::default()
    });
    Ok(ManagedIdentityCredential::new(options)?)
}
