//! Roles of a membership and what each may do. Each role includes the ones before it.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads records, jobs and events.
    Viewer,
    /// + saves drafts.
    Editor,
    /// + commits, sends sync commands, resolves conflicts.
    Planner,
    /// + rollback and the publish API.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Planner, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Planner => "planner",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// Whether this role includes `required`.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }

    pub fn can_save_drafts(self) -> bool {
        self.allows(Role::Editor)
    }

    pub fn can_sync(self) -> bool {
        self.allows(Role::Planner)
    }

    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_includes_the_ones_before_it() {
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Planner.can_sync() && !Role::Editor.can_sync());
        assert!(Role::Editor.can_save_drafts() && !Role::Viewer.can_save_drafts());
        assert!(Role::Admin.is_admin() && !Role::Planner.is_admin());
    }

    #[test]
    fn parses_its_own_names_only() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::parse("Admin"), None);
    }
}
