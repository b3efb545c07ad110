//! Entra ID for both stores when no emulator key or SAS is configured: the app's
//! managed identity in Azure, the operator's `az login` on a workstation
//! (docs/operations.md, "Who may run what").

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};

use crate::settings::StoreSettings;

/// Where the token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The app's managed identity: user-assigned when `AZURE_CLIENT_ID` is set.
    ManagedIdentity,
    /// The Azure CLI's (or Azure Developer CLI's) signed-in user.
    DeveloperTools,
}

/// Managed identity where the platform offers one (Functions sets
/// `IDENTITY_ENDPOINT`; VMs and containers with `AZURE_CLIENT_ID` name theirs);
/// anywhere else, the developer tools' sign-in.
pub fn source(env: impl Fn(&str) -> Option<String>) -> Source {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("IDENTITY_ENDPOINT") || set("MSI_ENDPOINT") || set("AZURE_CLIENT_ID") {
        Source::ManagedIdentity
    } else {
        Source::DeveloperTools
    }
}

/// The credential for this process (see [`source`]).
pub fn credential(settings: &StoreSettings) -> anyhow::Result<Arc<dyn TokenCredential>> {
    match source(|name| std::env::var(name).ok()) {
        Source::ManagedIdentity => {
            let options = settings.azure_client_id.as_ref().map(|id| ManagedIdentityCredentialOptions {
                user_assigned_id: Some(UserAssignedId::ClientId(id.clone())),
                ..Default::default()
            });
            Ok(ManagedIdentityCredential::new(options)?)
        }
        Source::DeveloperTools => Ok(DeveloperToolsCredential::new(None)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_in_azure_use_their_identity_and_operators_their_sign_in() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(source(env(&[("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token")])), Source::ManagedIdentity);
        assert_eq!(source(env(&[("AZURE_CLIENT_ID", "0000")])), Source::ManagedIdentity);
        assert_eq!(source(env(&[])), Source::DeveloperTools);
        assert_eq!(source(env(&[("IDENTITY_ENDPOINT", "")])), Source::DeveloperTools);
    }
}
