//! The emergency switches an incident sets, as this instance enforces them: networks refused at
//! the edge until a time, and whether authentication is frozen. The incidents slice loads them
//! from the database when an incident action is announced (and every few seconds); the edge and
//! the identity layer only read them, without touching the database per request.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use sqlx::types::ipnetwork::IpNetwork;
use time::OffsetDateTime;

/// Parses an address or network (`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`) to block
/// or allow, refusing host bits set past the prefix (a typo that would cover something other
/// than meant) and the whole address space.
///
/// # Errors
/// What is wrong with it, in words for the operator.
pub fn parse_network(text: &str) -> Result<IpNetwork, String> {
    let net: IpNetwork = text.trim().parse().map_err(|e| {
        format!(
            "`{text}` is not an IP address or CIDR network ({e}); e.g. 203.0.113.7 or 203.0.113.0/24"
        )
    })?;
    if net.network() != net.ip() {
        return Err(format!(
            "`{text}` has host bits set past its prefix; did you mean {}/{}?",
            net.network(),
            net.prefix()
        ));
    }
    if net.prefix() == 0 {
        return Err(format!(
            "`{text}` would block every address; block narrower networks"
        ));
    }
    Ok(net)
}

#[derive(Debug, Default)]
pub struct Controls {
    blocks: RwLock<Arc<Vec<(IpNetwork, OffsetDateTime)>>>,
    auth_frozen: AtomicBool,
}

impl Controls {
    /// Replaces what is enforced.
    pub fn set(&self, blocks: Vec<(IpNetwork, OffsetDateTime)>, auth_frozen: bool) {
        if let Ok(mut b) = self.blocks.write() {
            *b = Arc::new(blocks);
        }
        self.auth_frozen.store(auth_frozen, Ordering::Release);
    }

    /// Until when `ip` is blocked, if it is.
    #[must_use]
    pub fn blocked(&self, ip: IpAddr, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let blocks = self.blocks.read().ok()?.clone();
        blocks
            .iter()
            .filter(|(net, until)| *until > now && net.contains(ip))
            .map(|(_, until)| *until)
            .max()
    }

    /// No new sessions, no token refreshes, no access token accepted.
    #[must_use]
    pub fn auth_frozen(&self) -> bool {
        self.auth_frozen.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_covers_its_network_until_its_end() {
        let c = Controls::default();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let until = now + time::Duration::minutes(5);
        c.set(vec![("203.0.113.0/24".parse().unwrap(), until)], true);
        assert_eq!(c.blocked("203.0.113.9".parse().unwrap(), now), Some(until));
        assert_eq!(c.blocked("203.0.114.9".parse().unwrap(), now), None);
        assert_eq!(c.blocked("203.0.113.9".parse().unwrap(), until), None);
        assert!(c.auth_frozen());
    }
}
