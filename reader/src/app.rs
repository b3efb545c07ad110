//! The reader application: what every request handler shares, built once at
//! start-up ([`crate::startup::build`]).

use std::sync::Arc;
use std::time::Duration;

use tiering::contract::Contract;

use crate::auth::Gate;
use crate::forward::Upstream;
use crate::tiers::Tiers;

#[derive(Debug, Clone)]
pub struct App {
    /// Both stores: reads, lists and move-backs.
    pub tiers: Tiers,
    /// The contract profile (docs/adopting.md): routes, answers, writes, callers.
    pub contract: Arc<Contract>,
    /// Callers' authentication (the profile's `[auth]`; docs/auth.md).
    pub gate: Gate,
    /// The team's current API (`READER_UPSTREAM_URL`): write-through in serve
    /// mode, every request in front mode; `None`: serve mode, read-only.
    pub upstream: Option<Upstream>,
    /// Every read answers within this.
    pub request_timeout: Duration,
    /// Front mode: archived records a list request moves back at most
    /// (`READER_LIST_MOVEBACK_MAX`; docs/front-mode.md, "Lists").
    pub list_moveback_max: usize,
}
