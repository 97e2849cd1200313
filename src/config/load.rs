//! Reading a config file: strict typed parsing (unknown fields, duplicate keys and YAML 1.1
//! booleans are errors), then semantic validation, every problem located as
//! `file:line:column: field.path: what was expected`.

use std::fmt;
use std::path::Path;

use super::locate::{Pos, SpanIndex, join};
use super::schema::Config;
use super::validate::validate;

/// One thing wrong with a config, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where in the file, when known.
    pub pos: Option<Pos>,
    /// The field path, e.g. `spec.snapshots.retention.daily` (empty for the whole document).
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Every problem found in one config file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn one(file: &str, pos: Option<Pos>, path: String, message: String) -> Self {
        ConfigError {
            file: file.to_owned(),
            problems: vec![Problem { pos, path, message }],
        }
    }

    /// Each problem on its own line, as `file:line:column: path: message`.
    pub fn lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|p| {
                let mut s = self.file.clone();
                if let Some(pos) = p.pos {
                    s.push_str(&format!(":{}:{}", pos.line, pos.column));
                }
                s.push_str(": ");
                if !p.path.is_empty() {
                    s.push_str(&p.path);
                    s.push_str(": ");
                }
                s.push_str(&p.message);
                s
            })
            .collect()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for line in self.lines() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Reading the file failed before any parsing.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {file}")]
    Read {
        /// The file as named.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Reads, parses and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        file: file.clone(),
        source,
    })?;
    Ok(parse(&file, &text)?)
}

/// Parses and validates config text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Err(ConfigError::one(
            file,
            None,
            String::new(),
            "the file is empty; expected a document with apiVersion: kentledge.io/v1alpha1 and kind: BackupConfig".into(),
        ));
    }
    let index = SpanIndex::build(text);
    let options = serde_saphyr::options! { strict_booleans: true };
    let config: Config = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| syntax_problem(file, &index, &e))?;
    let mut problems: Vec<Problem> = validate(&config)
        .into_iter()
        .map(|(path, message)| Problem {
            pos: index.position_of(&path),
            path,
            message,
        })
        .collect();
    if problems.is_empty() {
        return Ok(config);
    }
    problems.sort_by_key(|p| p.pos);
    Err(ConfigError {
        file: file.to_owned(),
        problems,
    })
}

/// Turns a parser error into a located problem with a field path and a plain message.
fn syntax_problem(file: &str, index: &SpanIndex, e: &serde_saphyr::Error) -> ConfigError {
    let inner = e.without_snippet();
    let pos = inner.location().map(|l| Pos {
        line: l.line() as u32,
        column: l.column() as u32,
    });
    let mut message = inner.to_string();
    if let Some(p) = pos {
        // The plain message ends with its position; we print positions our own way.
        let suffix = format!(" at line {}, column {}", p.line, p.column);
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    let Some(at) = pos else {
        return ConfigError::one(file, None, String::new(), message);
    };
    if let Some(field) = backticked(&message, "unknown field `") {
        let path = index
            .key_at(at)
            .map(str::to_owned)
            .unwrap_or_else(|| join(index.map_at(at).unwrap_or(""), &field));
        let expected = message
            .split_once("expected ")
            .map(|(_, rest)| rest.replace('`', ""))
            .unwrap_or_default();
        let mut text = if expected.is_empty() {
            "unknown field".to_owned()
        } else {
            format!("unknown field, expected {expected}")
        };
        if let Some(close) = closest(&field, expected.trim_start_matches("one of ").split(", ")) {
            text.push_str(&format!(" (did you mean {close}?)"));
        }
        return ConfigError::one(file, pos, path, text);
    }
    if let Some(field) = backticked(&message, "missing field `") {
        let path = join(index.map_at(at).unwrap_or(""), &field);
        return ConfigError::one(file, pos, path, "required field is missing".into());
    }
    let path = index.node_at(at).unwrap_or("").to_owned();
    ConfigError::one(file, pos, path, message.replace('`', ""))
}

/// The text between `prefix` and the next backtick.
fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("dialy", "daily"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("dialy", ["last", "daily"].into_iter()),
            Some("daily")
        );
        assert_eq!(closest("zzzzzz", ["last", "daily"].into_iter()), None);
    }
}
