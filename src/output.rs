//! Writing results to stdout: text or JSON, where a closed pipe (`kentledge list | head`) is
//! not an error.

use std::io::Write;

use crate::error::Error;

/// Writes `text` to stdout; a broken pipe counts as success.
pub fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(()),
    }
}

/// Writes a value as pretty JSON and a newline.
pub fn print_json(value: &serde_json::Value) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Output(e.into()))?;
    text.push('\n');
    print(&text)
}
