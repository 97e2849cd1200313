//! The namespace-scoped config file: its schema, strict located parsing, and validation.

mod load;
mod locate;
pub mod schema;
mod validate;
pub use validate::check_bucket_name;

pub use load::{ConfigError, LoadError, Problem, load_file, parse};
pub use locate::Pos;
pub use schema::*;

#[cfg(test)]
mod tests;
