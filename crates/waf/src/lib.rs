//! LeadGen's web application firewall: pure request inspection and rate-limit algorithms.
//!
//! The engine itself (normalisation, detectors, anomaly scoring, `waf-rules.json` and
//! `rate-limits.json`) is the perimeter capability's work. Today the crate holds the one request
//! rule the foundation enforces before any handler runs: which HTTP methods exist at all.

/// Methods LeadGen serves. Anything else (TRACE, CONNECT, WebDAV verbs…) is refused at the edge.
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Whether `method` (as sent on the wire, case-sensitive per RFC 9110) is one LeadGen serves.
#[must_use]
pub fn method_allowed(method: &str) -> bool {
    ALLOWED_METHODS.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_and_connect_are_refused_and_common_methods_pass() {
        assert!(!method_allowed("TRACE"));
        assert!(!method_allowed("CONNECT"));
        assert!(!method_allowed("get"), "methods are case-sensitive");
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(method_allowed(m), "{m}");
        }
    }
}
