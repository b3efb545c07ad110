//! Entra ID for both stores when no emulator key or SAS is configured: the app's
//! managed identity in Azure, the operator's `az login` on a workstation
//! (docs/operations.md, "Who may run what"). Which one is decided by the
//! settings ([`CredentialSource`]).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};

use crate::settings::{CredentialSource, StoreSettings};

/// The credential the settings name.
pub fn credential(settings: &StoreSettings) -> anyhow::Result<Arc<dyn TokenCredential>> {
    match &settings.credential {
        CredentialSource::ManagedIdentity { client_id } => {
            let options = client_id.as_ref().map(|id| ManagedIdentityCredentialOptions {
                user_assigned_id: Some(UserAssignedId::ClientId(id.clone())),
                ..Default::default()
            });
            Ok(ManagedIdentityCredential::new(options)?)
        }
        CredentialSource::DeveloperTools => Ok(DeveloperToolsCredential::new(None)?),
    }
}
