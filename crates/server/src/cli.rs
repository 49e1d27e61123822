//! The `leadgen` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "leadgen",
    version,
    about = "LeadGen: self-hosted B2B lead generation, secure by default"
)]
pub struct Cli {
    /// Operator configuration file layered over the built-in defaults (also LEADGEN_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Environment file with LEADGEN_… lines (also LEADGEN_ENV_FILE).
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve LeadGen over HTTPS (and redirect plain HTTP).
    Serve(ServeArgs),
    /// Apply pending database migrations.
    Migrate(OpsArgs),
    /// Check the configuration and exit non-zero naming the first problem.
    Configtest(OpsArgs),
    /// Key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Demo data.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// DKIM keys of the domains campaigns are sent from.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// The early-access list of the landing page.
    #[command(subcommand)]
    Waitlist(WaitlistCommand),
    /// Vulnerability reports: the operators' triage queue.
    #[command(subcommand)]
    Vdp(VdpCommand),
    /// Card data (PCI): find card numbers in the organizations' free-text data.
    #[command(subcommand)]
    Pci(PciCommand),
    /// Lead data retention: anonymise leads past their organization's period, purge later.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Member accounts: carry out the deletions people asked for.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Backups with pgBackRest: take, list and verify them.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore a backup: prove it restores (`--verify`), or restore to a point in time.
    Restore(RestoreArgs),
    /// Incident response: record an incident and act on every server instance within a second.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Operator console accounts (/operator).
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator. The password is read from standard input (not echoed on a terminal);
    /// the TOTP secret to enrol in an authenticator app is printed once.
    Add(OperatorAddArgs),
}

#[derive(Debug, clap::Args)]
pub struct OperatorAddArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The operator's email address (their sign-in name).
    pub email: String,
    /// An address or network the operator may sign in and act from (repeatable; none: any).
    #[arg(long = "allow-ip", value_name = "CIDR")]
    pub allow_ips: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open an incident; its alert goes to the webhooks of its severity.
    Open(IncidentOpenArgs),
    /// Open incidents (all with --all), each with its timeline.
    List(IncidentListArgs),
    /// Acknowledge an incident: a high-severity one stops re-alerting every 15 minutes.
    Ack(IncidentRef),
    /// Refuse requests from an address or CIDR network at the WAF, for a while.
    Block(IncidentBlockArgs),
    /// Lift a block of an address or network.
    Unblock(IncidentUnblockArgs),
    /// End sessions: of one user, of an organization's members, or everyone's.
    RevokeSessions(IncidentRevokeArgs),
    /// Freeze authentication: no sign-in, no token refresh, no access token accepted.
    FreezeAuth(IncidentRef),
    /// Undo freeze-auth.
    ThawAuth(IncidentRef),
    /// Roll credentials: JWT signing keys (earlier ones revoked), data keys, or an organization's
    /// API keys.
    Rotate(IncidentRotateArgs),
    /// Resolve an incident with a summary.
    Resolve(IncidentResolveArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IncidentSeverity {
    Low,
    Medium,
    High,
}

#[derive(Debug, clap::Args)]
pub struct IncidentActor {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Who acts, for the timeline and the audit trail (default: operator:$USER).
    #[arg(long = "as", value_name = "NAME")]
    pub actor: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct IncidentOpenArgs {
    #[command(flatten)]
    pub who: IncidentActor,
    #[arg(long, value_enum)]
    pub severity: IncidentSeverity,
    /// What is happening.
    #[arg(long)]
    pub summary: String,
}

#[derive(Debug, clap::Args)]
pub struct IncidentListArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Resolved incidents too.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct IncidentRef {
    #[command(flatten)]
    pub who: IncidentActor,
    /// The incident's number.
    pub id: i64,
}

#[derive(Debug, clap::Args)]
pub struct IncidentBlockArgs {
    #[command(flatten)]
    pub who: IncidentActor,
    pub id: i64,
    /// An address (203.0.113.7) or network (203.0.113.0/24, 2001:db8::/32).
    #[arg(long)]
    pub ip: String,
    /// How long: 90s, 30m, 12h, 7d.
    #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub duration: time::Duration,
}

#[derive(Debug, clap::Args)]
pub struct IncidentUnblockArgs {
    #[command(flatten)]
    pub who: IncidentActor,
    pub id: i64,
    #[arg(long)]
    pub ip: String,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["user", "org", "all"])))]
pub struct IncidentRevokeArgs {
    #[command(flatten)]
    pub who: IncidentActor,
    pub id: i64,
    /// One user, by email address.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Every member of an organization, by its id.
    #[arg(long, value_name = "ORG_ID")]
    pub org: Option<uuid::Uuid>,
    /// Everyone.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["jwt", "data", "org_api_keys"])))]
pub struct IncidentRotateArgs {
    #[command(flatten)]
    pub who: IncidentActor,
    pub id: i64,
    /// A new JWT signing key; every earlier key is revoked (sessions live on: clients refresh).
    #[arg(long)]
    pub jwt: bool,
    /// A new generation of data keys, with every encrypted field re-encrypted.
    #[arg(long)]
    pub data: bool,
    /// Revoke every API key of this organization (its admins create new ones).
    #[arg(long, value_name = "ORG_ID")]
    pub org_api_keys: Option<uuid::Uuid>,
}

#[derive(Debug, clap::Args)]
pub struct IncidentResolveArgs {
    #[command(flatten)]
    pub who: IncidentActor,
    pub id: i64,
    /// What happened and what was done.
    #[arg(long)]
    pub summary: String,
}

fn parse_duration(s: &str) -> Result<time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 30m, 12h or 7d"))?;
    let d = match unit {
        "s" => time::Duration::seconds(n),
        "m" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        "d" => time::Duration::days(n),
        _ => return Err(format!("`{s}`: the unit must be s, m, h or d")),
    };
    if d <= time::Duration::ZERO || d > time::Duration::days(365) {
        return Err(format!("`{s}`: a block lasts from 1 second to 365 days"));
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup (full or incremental) and record its manifest.
    Run(BackupRunArgs),
    /// List the backups in the repository and the recent runs.
    List(OpsArgs),
    /// Check every file of the repository against its checksum; names each damaged file.
    Verify(OpsArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackupType {
    Full,
    Incr,
}

#[derive(Debug, clap::Args)]
pub struct BackupRunArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Full, or incremental (changed files since the last backup).
    #[arg(long = "type", value_enum, default_value = "incr")]
    pub kind: BackupType,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["verify", "to"])))]
pub struct RestoreArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Restore the latest backup into a scratch cluster, check it, and remove it again.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: prove the newest backup taken at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339, requires = "verify")]
    pub at: Option<time::OffsetDateTime>,
    /// Point-in-time restore: the database as it was at this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339, requires = "into")]
    pub to: Option<time::OffsetDateTime>,
    /// With --to: a new folder to restore into (the cluster goes into DIR/postgres).
    #[arg(long, value_name = "DIR", requires = "to")]
    pub into: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Delete the accounts whose deletion grace period has passed.
    Purge(AccountsPurgeArgs),
    /// Delete one account at once, without its grace period (an operator's decision).
    Delete(AccountsDeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct AccountsPurgeArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Run as of this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub as_of: Option<time::OffsetDateTime>,
}

#[derive(Debug, clap::Args)]
pub struct AccountsDeleteArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The account's email address.
    pub email: String,
    /// Required: the deletion skips the grace period in which a sign-in would cancel it.
    #[arg(long)]
    pub now: bool,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Anonymise expired leads and purge anonymised ones past the grace period; `--dry-run`
    /// reports what it would do and changes nothing.
    Run(RetentionRunArgs),
}

#[derive(Debug, clap::Args)]
pub struct RetentionRunArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Report what would be anonymised and purged, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run as of this time (RFC 3339) instead of now: to see what a later run would do.
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub as_of: Option<time::OffsetDateTime>,
}

fn parse_rfc3339(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time like 2026-12-03T10:00:00Z: {e}"))
}

#[derive(Debug, Subcommand)]
pub enum PciCommand {
    /// Report every card number in a free-text column (masked to the first six and last four
    /// digits); exits 1 when any remains.
    Scan(PciScanArgs),
}

#[derive(Debug, clap::Args)]
pub struct PciScanArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Mask what is found where it stands (and raise the `card-number-masked` alert).
    #[arg(long)]
    pub fix: bool,
    /// A log file or directory to read besides `pci.log_paths` (repeatable).
    #[arg(long = "log", value_name = "PATH")]
    pub logs: Vec<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum VdpCommand {
    /// The reports, newest first, with their status and deadlines.
    List(OpsArgs),
    /// One report in full: every field, its timeline and its attachments' names.
    Show(VdpShowArgs),
    /// Move a report on (status, severity, reward) and/or add a note; the reporter is mailed
    /// what changed for them.
    Triage(VdpTriageArgs),
    /// Write an attachment, decrypted, to a file.
    Attachment(VdpAttachmentArgs),
}

#[derive(Debug, clap::Args)]
pub struct VdpShowArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The tracking id (LG-VDP-<year>-<number>).
    pub tracking_id: String,
}

#[derive(Debug, clap::Args)]
pub struct VdpTriageArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    pub tracking_id: String,
    /// triaged, accepted, duplicate, rejected, fixed or disclosed.
    #[arg(long)]
    pub status: Option<String>,
    /// none, low, medium, high or critical.
    #[arg(long)]
    pub severity: Option<String>,
    /// none, under_review, eligible, ineligible or paid.
    #[arg(long)]
    pub reward: Option<String>,
    /// With --status duplicate: the report this one duplicates.
    #[arg(long, value_name = "TRACKING_ID")]
    pub duplicate_of: Option<String>,
    /// A note on the report's timeline.
    #[arg(long)]
    pub note: Option<String>,
    /// Show the note to the reporter (status page and mail).
    #[arg(long)]
    pub to_reporter: bool,
    /// Who is acting, as the timeline and the audit trail name them.
    #[arg(long, default_value = "operator:cli")]
    pub actor: String,
}

#[derive(Debug, clap::Args)]
pub struct VdpAttachmentArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    pub tracking_id: String,
    /// The attachment's number (1, 2, …), as `vdp show` lists them.
    pub number: i32,
    /// The file to write.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum WaitlistCommand {
    /// Show every address with its status (pending, confirmed, unsubscribed; invited), and the
    /// posts the bot traps caught.
    List(OpsArgs),
    /// Write the list as CSV (cells that a spreadsheet would run as formulas are neutralised).
    Export(WaitlistExportArgs),
    /// Mail a sign-up invitation to confirmed addresses not invited yet, and mark them invited.
    Invite(WaitlistInviteArgs),
}

#[derive(Debug, clap::Args)]
pub struct WaitlistExportArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct WaitlistInviteArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Only these addresses (repeatable); without it, every confirmed address in sign-up order.
    #[arg(long = "email", value_name = "ADDRESS")]
    pub emails: Vec<String>,
    /// At most this many invitations.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Generate a signing key for a sending domain, store it sealed under the master key, and
    /// print the DNS TXT record to publish. Every server instance signs with it at its next send.
    Generate(DkimGenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct DkimGenerateArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The domain of the sender addresses, e.g. example.com.
    #[arg(long)]
    pub domain: String,
    /// The selector (letters, digits and hyphens), e.g. lg2026.
    #[arg(long, default_value = "leadgen")]
    pub selector: String,
    /// rsa (RSA-2048) or ed25519.
    #[arg(long, value_enum, default_value = "rsa")]
    pub algorithm: DkimAlgorithm,
}

/// Which key `leadgen dkim generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DkimAlgorithm {
    /// RSA-2048 with SHA-256: what every receiver verifies.
    Rsa,
    /// Ed25519 with SHA-256 (RFC 8463): short and fast; receivers that lag fall back to RSA.
    Ed25519,
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Queue an import of N synthetic leads into the demo organization (created if missing); the
    /// server imports them in the background (at once if it is running, else when it starts).
    Seed(DemoSeedArgs),
    /// Write N synthetic leads as CSV in LeadGen's import template to standard output.
    Csv(DemoCsvArgs),
}

#[derive(Debug, clap::Args)]
pub struct DemoSeedArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    #[arg(long, default_value_t = 1000)]
    pub leads: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, clap::Args)]
pub struct DemoCsvArgs {
    #[arg(long)]
    pub leads: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number the generated addresses from here (keeps two files' addresses apart).
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every organization's hash chain (or one's) and name the first broken link.
    /// Exits 1 when a link is broken.
    Verify(AuditVerifyArgs),
    /// Re-hash the chains written before erasable audit rows (hash version 1) as version 2,
    /// after verifying each, so deleted members can be pseudonymised in them.
    Upgrade(OpsArgs),
}

#[derive(Debug, clap::Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Only this organization.
    #[arg(long, value_name = "ID")]
    pub org: Option<uuid::Uuid>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new access-token signing key. Tokens signed by the previous keys stay valid until
    /// they expire; every server instance picks the new key up within a minute.
    RotateJwt(OpsArgs),
    /// Re-encrypt every lead field under a new data key, in resumable online batches. Run it
    /// again to finish an interrupted run, and once more a minute later to catch values that
    /// servers encrypted with the previous key meanwhile; then retire the previous key.
    RotateData(RotateDataArgs),
    /// Retire a data key that no lead field uses any more (it is then never loaded again).
    RetireData(RetireDataArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateDataArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Leads per transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch: u32,
}

#[derive(Debug, clap::Args)]
pub struct RetireDataArgs {
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The key id, as `rotate-data` reported it.
    #[arg(long)]
    pub key: u32,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data folder (also LEADGEN_DATA_DIR). Default ./data.
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// HTTPS port (also LEADGEN_SERVER__HTTPS_PORT). Default 8443.
    #[arg(long)]
    pub https_port: Option<u16>,
    /// Plain-HTTP port that redirects to HTTPS (also LEADGEN_SERVER__HTTP_PORT). Default 8080.
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Create the demo organization and its admin if missing (also LEADGEN_DEMO__CREATE_ON_START).
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, clap::Args)]
pub struct OpsArgs {
    /// Data folder (also LEADGEN_DATA_DIR).
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}
