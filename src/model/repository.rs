//! A repository as every layer names it: which engine keeps it.

use serde::{Deserialize, Serialize};

/// borg or restic.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// BorgBackup 1.2 – 1.4.
    Borg,
    /// restic 0.14 and newer.
    Restic,
}

impl Engine {
    /// The engine's program name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Borg => "borg",
            Engine::Restic => "restic",
        }
    }
}

impl std::fmt::Display for Engine {
    /// The engine's program name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
