//! Data classification (Security Policy, Data Protection §2): every column of every table in one
//! registry, in the policy's four tiers. An integration test compares it with the live schema, so
//! a migration that adds a column without classifying it fails the build's tests.
//!
//! The tiers, as the policy defines them:
//! - public: non-sensitive (names of enumerations, timestamps of public events);
//! - internal: limited distribution (ids, settings, operational state);
//! - confidential: personal data, leads, email content;
//! - restricted: credentials, keys, secrets and their hashes.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Public,
    Internal,
    Confidential,
    Restricted,
}

use Class::{Confidential as C, Internal as I, Public as P, Restricted as R};

/// (table in schema `app`, [(column, class)]).
pub const REGISTRY: &[(&str, &[(&str, Class)])] = &[
    (
        "acl_group_members",
        &[("org_id", I), ("group_id", I), ("user_id", I)],
    ),
    (
        "acl_groups",
        &[("id", I), ("org_id", I), ("name", I), ("created_at", I)],
    ),
    (
        "acl_revisions",
        &[
            ("org_id", I),
            ("resource_id", I),
            ("revision", I),
            ("read_groups", I),
            ("write_groups", I),
            ("sensitivity", I),
            ("changed_by", I),
            ("changed_at", I),
            ("rollback_of", I),
        ],
    ),
    (
        "api_keys",
        &[
            ("id", I),
            ("org_id", I),
            ("name", I),
            ("key_hash", R),
            ("display", I),
            ("scopes", I),
            ("created_by", I),
            ("created_at", I),
            ("expires_at", I),
            ("revoked_at", I),
            ("last_used_at", I),
            ("last_used_ip", C),
            ("replaced_by", I),
            ("notified_days", I),
        ],
    ),
    (
        "audit_log",
        &[
            ("id", I),
            ("org_id", I),
            ("seq", I),
            ("at", I),
            ("actor_id", I),
            ("action", I),
            ("target", I),
            ("before", C),
            ("after", C),
            ("ip", C),
            ("request_id", I),
            ("prev_hash", I),
            ("hash", I),
        ],
    ),
    (
        "auth_codes",
        &[
            ("code_hash", R),
            ("user_id", I),
            ("session_id", I),
            ("code_challenge", C),
            ("sealed_session", R),
            ("created_at", I),
            ("expires_at", I),
            ("used_at", I),
        ],
    ),
    (
        "auth_throttle",
        &[
            ("scope", I),
            ("key", C),
            ("failures", I),
            ("last_failure_at", I),
            ("locked_until", I),
        ],
    ),
    (
        "companies",
        &[
            ("id", I),
            ("org_id", I),
            ("name", C),
            ("domain", C),
            ("naics", C),
            ("industry", C),
            ("employee_range", C),
            ("annual_revenue", C),
            ("technologies", C),
            ("city", C),
            ("region", C),
            ("country", C),
            ("version", I),
            ("leads_version", I),
            ("updated_by", I),
            ("created_at", I),
            ("updated_at", I),
        ],
    ),
    (
        "credentials",
        &[("user_id", I), ("password_hash", R), ("updated_at", I)],
    ),
    (
        "campaign_events",
        &[
            ("id", I),
            ("org_id", I),
            ("campaign_id", I),
            ("message_id", I),
            ("kind", I),
            // A bounce's diagnostic or a clicked link: about a person's mailbox.
            ("detail", C),
            ("at", I),
        ],
    ),
    (
        "campaign_messages",
        &[
            ("id", I),
            ("org_id", I),
            ("campaign_id", I),
            ("lead_id", I),
            ("email_bidx", C),
            ("state", I),
            ("attempts", I),
            ("next_attempt_at", I),
            ("lease_until", I),
            ("sent_at", I),
            // The relay's reply may quote the recipient's address.
            ("smtp_reply", C),
        ],
    ),
    (
        "campaign_templates",
        &[
            ("id", I),
            ("org_id", I),
            ("name", I),
            ("subject", C),
            ("html", C),
            ("text", C),
            ("text_generated", I),
            ("created_by", I),
            ("created_at", I),
            ("updated_at", I),
        ],
    ),
    (
        "campaigns",
        &[
            ("id", I),
            ("org_id", I),
            ("name", I),
            ("template_id", I),
            ("sender_id", I),
            ("audience", C),
            ("state", I),
            ("tracking", I),
            ("scheduled_at", I),
            ("time_zone", I),
            ("send_by", I),
            ("send_role", I),
            ("approved_by", I),
            ("approved_at", I),
            ("resolved_at", I),
            ("recipients", I),
            ("suppressed", I),
            ("started_at", I),
            ("finished_at", I),
            ("read_groups", I),
            ("write_groups", I),
            ("sensitivity", I),
            ("created_by", I),
            ("created_at", I),
            ("updated_at", I),
        ],
    ),
    (
        "data_keys",
        &[
            ("id", I),
            ("purpose", I),
            ("wrapped", R),
            ("created_at", I),
            ("retired_at", I),
        ],
    ),
    (
        "identities",
        &[
            ("provider", I),
            ("subject", C),
            ("user_id", I),
            ("email", C),
            ("created_at", I),
            ("last_sign_in_at", I),
        ],
    ),
    (
        "import_batches",
        &[("job_id", I), ("org_id", I), ("batch_no", I), ("rows", I)],
    ),
    (
        "import_issues",
        &[
            ("id", I),
            ("job_id", I),
            ("org_id", I),
            ("line", I),
            ("column_name", I),
            ("severity", I),
            // Reasons may quote the offending value (an address that is not one).
            ("reason", C),
        ],
    ),
    (
        "import_jobs",
        &[
            ("id", I),
            ("org_id", I),
            ("created_by", I),
            ("node", I),
            ("file_name", C),
            ("file_bytes", I),
            ("file_sha256", I),
            ("encoding", I),
            ("status", I),
            ("mode", I),
            ("mapping", I),
            ("rows_done", I),
            ("bytes_done", I),
            ("created", I),
            ("updated", I),
            ("duplicates", I),
            ("rejected", I),
            ("warnings", I),
            ("error", I),
            ("lease_owner", I),
            ("lease_until", I),
            ("created_at", I),
            ("started_at", I),
            ("finished_at", I),
            ("updated_at", I),
            ("batch_rows", I),
        ],
    ),
    (
        "dkim_keys",
        &[
            ("domain", P),
            ("selector", P),
            ("algorithm", P),
            ("key_sealed", R),
            // Published in DNS.
            ("dns_record", P),
            ("active", I),
            ("created_at", I),
        ],
    ),
    (
        "invitations",
        &[
            ("id", I),
            ("org_id", I),
            ("email", C),
            ("role", I),
            ("token_hash", R),
            ("invited_by", I),
            ("created_at", I),
            ("expires_at", I),
            ("accepted_at", I),
            ("accepted_by", I),
            ("revoked_at", I),
        ],
    ),
    (
        "jwt_keys",
        &[
            ("kid", I),
            ("secret_sealed", R),
            ("created_at", I),
            ("retired_at", I),
        ],
    ),
    (
        "leads",
        &[
            ("id", I),
            ("org_id", I),
            ("first_name", C),
            ("last_name", C),
            ("title", C),
            ("seniority", C),
            ("department", C),
            ("email_ct", C),
            ("email_bidx", C),
            ("phone_ct", C),
            ("linkedin_url", C),
            ("company_id", I),
            ("company_name", C),
            ("company_domain", C),
            ("industry", C),
            ("employee_range", C),
            ("city", C),
            ("region", C),
            ("country", C),
            ("source", C),
            ("status", C),
            ("owner_id", I),
            ("tags", C),
            ("custom", C),
            ("score", C),
            ("do_not_contact", C),
            ("read_groups", I),
            ("write_groups", I),
            ("sensitivity", I),
            ("acl_revision", I),
            ("notes_text", C),
            ("search", C),
            ("created_at", I),
            ("updated_at", I),
        ],
    ),
    (
        "memberships",
        &[
            ("org_id", I),
            ("user_id", I),
            ("role", I),
            ("created_at", I),
        ],
    ),
    (
        "mfa_challenges",
        &[
            ("id", I),
            ("factor_id", I),
            ("user_id", I),
            ("created_at", I),
            ("verified_at", I),
        ],
    ),
    (
        "mfa_factors",
        &[
            ("id", I),
            ("user_id", I),
            ("factor_type", P),
            ("friendly_name", C),
            ("status", I),
            ("secret_sealed", R),
            ("last_used_step", I),
            ("failed_step", I),
            ("created_at", I),
            ("updated_at", I),
        ],
    ),
    (
        "notifications",
        &[
            ("id", I),
            ("org_id", I),
            ("audience", I),
            ("kind", I),
            ("message", I),
            ("created_at", I),
        ],
    ),
    (
        "one_time_tokens",
        &[
            ("token_hash", R),
            ("user_id", I),
            ("purpose", I),
            ("created_at", I),
            ("expires_at", I),
            ("used_at", I),
            ("code_challenge", C),
            ("redirect_to", I),
        ],
    ),
    (
        "organizations",
        &[("id", I), ("name", I), ("created_at", I), ("settings", I)],
    ),
    (
        "recovery_codes",
        &[
            ("factor_id", I),
            ("user_id", I),
            ("code_hash", R),
            ("used_at", I),
        ],
    ),
    (
        "refresh_tokens",
        &[
            ("token_hash", R),
            ("session_id", I),
            ("user_id", I),
            ("created_at", I),
            ("rotated_at", I),
        ],
    ),
    (
        "scoring_models",
        &[
            ("org_id", I),
            // Which leads an organization wants: its sales strategy.
            ("model", C),
            ("version", I),
            ("rescored_version", I),
            ("rescore_after", I),
            ("rescored_rows", I),
            ("rescore_lease", I),
            ("updated_by", I),
            ("updated_at", I),
        ],
    ),
    (
        "export_jobs",
        &[
            ("id", I),
            ("org_id", I),
            ("created_by", I),
            ("format", I),
            // A filter may hold words of a search, never an exact email (recorded as "given").
            ("filter", C),
            ("status", I),
            ("rows", I),
            ("bytes", I),
            // A hash of the link's secret token.
            ("token_sha256", R),
            ("expires_at", I),
            ("created_at", I),
            ("finished_at", I),
            ("lease_until", I),
            ("error", I),
        ],
    ),
    (
        "lead_list_entries",
        &[
            ("org_id", I),
            ("list_id", I),
            ("lead_id", I),
            ("added_by", I),
            ("added_at", I),
        ],
    ),
    (
        "lead_lists",
        &[
            ("id", I),
            ("org_id", I),
            ("owner_id", I),
            ("name", C),
            ("shared", I),
            ("created_at", I),
        ],
    ),
    (
        "lead_notes",
        &[
            ("id", I),
            ("org_id", I),
            ("lead_id", I),
            ("author_id", I),
            // What a salesperson wrote about a person: personal data.
            ("body", C),
            ("created_at", I),
        ],
    ),
    (
        "lead_activities",
        &[
            ("id", I),
            ("org_id", I),
            ("lead_id", I),
            ("actor_id", I),
            ("kind", I),
            // What was said or done with a person: personal data.
            ("summary", C),
            ("occurred_at", I),
            ("created_at", I),
        ],
    ),
    (
        "segments",
        &[
            ("id", I),
            ("org_id", I),
            ("owner_id", I),
            ("name", I),
            // A query may hold an exact email address.
            ("query", C),
            ("shared", I),
            ("created_at", I),
            ("updated_at", I),
        ],
    ),
    (
        "sessions",
        &[
            ("id", I),
            ("user_id", I),
            ("aal", I),
            ("created_at", I),
            ("refreshed_at", I),
            ("not_after", I),
            ("revoked_at", I),
            ("revoked_reason", I),
            ("user_agent", C),
            ("ip", C),
            ("org_id", I),
            ("amr", I),
        ],
    ),
    (
        "users",
        &[
            ("id", I),
            ("email", C),
            ("display_name", C),
            ("created_at", I),
            ("email_confirmed_at", I),
            ("last_sign_in_at", I),
            ("updated_at", I),
            ("user_metadata", C),
        ],
    ),
    (
        "sender_identities",
        &[
            ("id", I),
            ("org_id", I),
            ("address", C),
            ("display_name", C),
            ("verify_sha256", R),
            ("verified_at", I),
            ("created_by", I),
            ("created_at", I),
        ],
    ),
    (
        "suppressions",
        &[
            ("org_id", I),
            ("email_bidx", C),
            ("reason", C),
            ("campaign_id", I),
            ("created_at", I),
        ],
    ),
];

/// The class of `table.column`, if registered.
#[must_use]
pub fn class_of(table: &str, column: &str) -> Option<Class> {
    REGISTRY
        .iter()
        .find(|(t, _)| *t == table)
        .and_then(|(_, cols)| cols.iter().find(|(c, _)| *c == column))
        .map(|(_, class)| *class)
}
