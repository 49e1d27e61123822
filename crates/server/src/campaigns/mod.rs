//! Campaigns: templates with merge fields, verified sender addresses, campaigns sent to a
//! segment, a list or a search, under the ACL of whoever asked for the send and with the
//! organization's suppression list applied at send time; a durable outbox delivering each
//! recipient's message through the SMTP relay with DKIM, RFC 8058 one-click unsubscribe, and
//! bounce and complaint reports that feed the suppression list.

pub mod api;
pub mod dkim;
pub mod outbox;
pub mod pages;
pub mod public;
pub mod render;
pub mod reports;
pub mod tracking;

use std::sync::Arc;

use crate::leads::FieldKeys;
use crate::state::Core;

/// What the campaigns slice's routes and worker use.
#[derive(Clone)]
pub struct CampaignsState {
    pub core: Core,
    /// Lead fields (the recipient's address) and blind indexes.
    pub fields: FieldKeys,
    /// The sending domains' DKIM keys.
    pub dkim: Arc<dkim::Ring>,
    /// Wakes the delivery worker when a campaign is started, resumed or approved.
    pub wake: Arc<tokio::sync::Notify>,
}

crate::slice_state!(CampaignsState);
