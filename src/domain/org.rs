//! Organization identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An organization id such as `org-rio`: lowercase ASCII letters, digits and dashes,
/// 3 to 64 characters, starting with a letter. Parsed once at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(String);

/// Why a string is not an [`OrgId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid organization id {0:?}: expected 3-64 lowercase letters, digits or '-', starting with a letter")]
pub struct InvalidOrgId(pub String);

impl OrgId {
    pub fn parse(raw: &str) -> Result<Self, InvalidOrgId> {
        let ok = (3..=64).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidOrgId(raw.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgId {
    type Error = InvalidOrgId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OrgId> for String {
    fn from(value: OrgId) -> Self {
        value.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_demo_organizations() {
        assert_eq!(OrgId::parse("org-rio").unwrap().as_str(), "org-rio");
        assert!(OrgId::parse("org-portarthur").is_ok());
    }

    #[test]
    fn rejects_ids_that_could_smuggle_paths_or_markup() {
        for bad in [
            "", "ab", "Org-Rio", "org/rio", "../etc", "org rio", "1org", "org-<b>",
        ] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(OrgId::parse(&"a".repeat(65)).is_err());
    }
}
