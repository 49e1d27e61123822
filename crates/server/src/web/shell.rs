//! The app shell around every signed-in page (`templates/app.html`): the navigation, with the
//! current page marked; who is signed in; the organization the session works in, the role there
//! and a switcher to the member's other organizations; sign-out. The identity slice fills it in
//! (it knows the session and its organizations); pages only say where they are.

use time::OffsetDateTime;
use uuid::Uuid;

use super::time::When;

/// A place in the signed-in application, in navigation order. A new capability's pages add
/// their section here (Campaigns, Dashboard…) and appear in every page's navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Leads,
    Companies,
    Lists,
    Campaigns,
    Forms,
    Import,
    Scoring,
    Organization,
    Account,
}

impl Section {
    pub const ALL: [Section; 9] = [
        Section::Leads,
        Section::Companies,
        Section::Lists,
        Section::Campaigns,
        Section::Forms,
        Section::Import,
        Section::Scoring,
        Section::Organization,
        Section::Account,
    ];

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Leads => "Leads",
            Self::Companies => "Companies",
            Self::Lists => "Lists",
            Self::Campaigns => "Campaigns",
            Self::Forms => "Forms",
            Self::Import => "Import",
            Self::Scoring => "Scoring",
            Self::Organization => "Organization",
            Self::Account => "Account",
        }
    }

    #[must_use]
    pub fn href(self) -> &'static str {
        match self {
            Self::Leads => "/leads",
            Self::Companies => "/companies",
            Self::Lists => "/lists",
            Self::Campaigns => "/campaigns",
            Self::Forms => "/forms",
            Self::Import => "/leads/import",
            Self::Scoring => "/leads/scoring",
            Self::Organization => "/org",
            Self::Account => "/account",
        }
    }

    /// Sections that show an organization's data need one; without it they send the member to
    /// create or join one.
    #[must_use]
    pub fn needs_organization(self) -> bool {
        !matches!(self, Self::Organization | Self::Account)
    }
}

/// One entry of the navigation.
#[derive(Debug, Clone)]
pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    pub current: bool,
}

/// An organization the member may switch to.
#[derive(Debug, Clone)]
pub struct OrgChoice {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub current: bool,
}

/// Who is signed in, and where.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub email: String,
    /// The organization the session works in and the role there.
    pub org: Option<(String, String)>,
    /// Every organization of the member's, the current one marked.
    pub orgs: Vec<OrgChoice>,
}

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub struct Shell {
    pub nav: Vec<NavItem>,
    /// Where the page is, for the switcher to come back to.
    pub back: &'static str,
    pub viewer: Viewer,
    /// The CSRF token of the shell's forms (switcher, sign-out).
    pub csrf: String,
    /// When the page is made: times on it read relative to this.
    pub now: OffsetDateTime,
}

impl Shell {
    #[must_use]
    pub fn new(section: Section, viewer: Viewer, csrf: &str, now: OffsetDateTime) -> Self {
        Self {
            back: section.href(),
            nav: Section::ALL
                .iter()
                .map(|s| NavItem {
                    label: s.label(),
                    href: s.href(),
                    current: *s == section,
                })
                .collect(),
            viewer,
            csrf: csrf.to_string(),
            now,
        }
    }

    /// `t` as people read it on this page.
    #[must_use]
    pub fn when(&self, t: OffsetDateTime) -> When {
        When::new(t, self.now)
    }

    /// The organization's name, or nothing when the session works in none.
    #[must_use]
    pub fn org_name(&self) -> &str {
        self.viewer.org.as_ref().map_or("", |(n, _)| n.as_str())
    }
}
