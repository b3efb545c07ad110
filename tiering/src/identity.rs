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

/// Managed identity where Functions (App Service) offers one: it sets
/// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` when the app has an identity, system-
/// or user-assigned (`AZURE_CLIENT_ID` then picks which). Anywhere else (a
/// workstation, Cloud Shell) the developer tools' sign-in, `az login`.
pub fn source(env: impl Fn(&str) -> Option<String>) -> Source {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("IDENTITY_ENDPOINT") && set("IDENTITY_HEADER") { Source::ManagedIdentity } else { Source::DeveloperTools }
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
        const FUNCTIONS: &[(&str, &str)] =
            &[("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"), ("IDENTITY_HEADER", "h")];
        assert_eq!(source(env(FUNCTIONS)), Source::ManagedIdentity);
        assert_eq!(source(env(&[])), Source::DeveloperTools);
        // A workstation with a service principal's id set, and Cloud Shell: az login.
        assert_eq!(source(env(&[("AZURE_CLIENT_ID", "0000")])), Source::DeveloperTools);
        assert_eq!(source(env(&[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")])), Source::DeveloperTools);
        assert_eq!(source(env(&[("IDENTITY_ENDPOINT", ""), ("IDENTITY_HEADER", "h")])), Source::DeveloperTools);
    }
}
