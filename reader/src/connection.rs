//! The reader's Cosmos client, connected in the background and shared by every
//! request.
//!
//! One task connects at start-up; the first connect of a cold instance is slow
//! (the SDK's runtime first asks the instance metadata service, IMDS, with a 2 s
//! connect and 5 s total timeout, unless `COSMOS_DISABLE_IMDS` is set:
//! azure_data_cosmos_driver 1.0, `system/vm_metadata.rs`; then a token, then the
//! account and container metadata). Requests that arrive while that first
//! connect is in progress wait for it, within their own deadline
//! (`READER_TIMEOUT_SECONDS`), rather than answering 503 to an instance's first
//! consumers; the attempt is never cancelled and started again. When the first
//! connect fails, or takes longer than [`FIRST_CONNECT_LIMIT`] (a store that is
//! down or hung), requests answer 503 at once while one background task keeps
//! reconnecting with backoff, instead of queueing behind connect attempts. Once
//! connected, the SDK client reconnects on its own.

use std::sync::Arc;
use std::time::Duration;

use tiering::cosmos::{ConnectError, CosmosStore};
use tiering::settings::StoreSettings;
use tiering::store::Transport;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::error::ApiError;

/// The longest a first connect may take before requests stop waiting for it.
pub const FIRST_CONNECT_LIMIT: Duration = Duration::from_secs(8);
/// How long callers are told to wait while Cosmos is not connected.
const RECONNECT_RETRY_AFTER: u64 = 5;
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(250);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(30);

/// Where the connection is.
#[derive(Debug, Clone)]
enum State {
    /// The first connect is in progress: requests wait for it.
    FirstConnect,
    Connected(CosmosStore),
    /// The first connect failed or took too long; a background task retries.
    Reconnecting,
    /// The container is not what the settings say: no retry helps.
    Misconfigured(String),
}

/// The shared connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct CosmosConnection {
    state: watch::Receiver<State>,
}

impl CosmosConnection {
    /// Starts connecting in the background at once.
    pub fn start(settings: &StoreSettings, transport: Transport) -> Self {
        let (tx, rx) = watch::channel(State::FirstConnect);
        tokio::spawn(connect_until_connected(tx, Arc::new(settings.clone()), transport));
        Self { state: rx }
    }

    /// An already connected store (tests).
    pub fn connected(store: CosmosStore) -> Self {
        let (_tx, rx) = watch::channel(State::Connected(store));
        Self { state: rx }
    }

    /// Waits, within `limit`, until the first connect has ended; returns what it came to.
    pub async fn first_connect(&self, limit: Duration) -> Result<(), ApiError> {
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(limit, state.wait_for(|s| !matches!(s, State::FirstConnect))).await;
        self.now().map(|_| ())
    }

    /// The store, waiting for a first connect in progress (the request's own
    /// deadline bounds the wait); 503 at once while reconnecting.
    pub async fn get(&self) -> Result<CosmosStore, ApiError> {
        let mut state = self.state.clone();
        if matches!(*state.borrow(), State::FirstConnect) {
            let _ = state.wait_for(|s| !matches!(s, State::FirstConnect)).await;
        }
        self.now()
    }

    fn now(&self) -> Result<CosmosStore, ApiError> {
        match &*self.state.borrow() {
            State::Connected(store) => Ok(store.clone()),
            State::Misconfigured(why) => Err(ApiError::Internal {
                message: "the reader is misconfigured; see its log".into(),
                detail: why.clone(),
            }),
            State::FirstConnect | State::Reconnecting => Err(ApiError::Unavailable {
                tier: crate::error::COSMOS,
                retry_after: RECONNECT_RETRY_AFTER,
                detail: "not connected yet; reconnecting in the background".into(),
            }),
        }
    }
}

async fn connect_until_connected(tx: watch::Sender<State>, settings: Arc<StoreSettings>, transport: Transport) {
    let mut delay = RECONNECT_FIRST_DELAY;
    let mut first = true;
    loop {
        let attempt = CosmosStore::connect(&settings, transport);
        tokio::pin!(attempt);
        let result = if first {
            // The first attempt runs on after FIRST_CONNECT_LIMIT (it is not
            // cancelled and paid again); only the waiting requests stop waiting.
            match tokio::time::timeout(FIRST_CONNECT_LIMIT, &mut attempt).await {
                Ok(result) => result,
                Err(_) => {
                    warn!(
                        limit_ms = FIRST_CONNECT_LIMIT.as_millis() as u64,
                        "Cosmos DB is slow to connect; answering 503 until it does"
                    );
                    let _ = tx.send(State::Reconnecting);
                    attempt.await
                }
            }
        } else {
            attempt.await
        };
        first = false;
        match result {
            Ok(store) => {
                let _ = tx.send(State::Connected(store));
                info!("connected to Cosmos DB");
                return;
            }
            Err(ConnectError::Misconfigured(why)) => {
                error!(error = %why, "the reader's settings do not describe the Cosmos container; every request answers 500 until they are fixed");
                let _ = tx.send(State::Misconfigured(why));
                return;
            }
            Err(ConnectError::Unreachable(e)) => {
                let _ = tx.send(State::Reconnecting);
                warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64, "Cosmos DB not reachable");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RECONNECT_MAX_DELAY);
            }
        }
    }
}
