//! Writing results to stdout: text or JSON, where a closed pipe (`kentledge list | head`) is
//! not an error.

use std::io::Write;

use crate::error::Error;
use crate::report::Render;

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables and sentences for people.
    Text,
    /// One JSON document for machines.
    Json,
}

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

/// A command's results, printed as the command goes for people, and as one JSON document at
/// the end for programs: a command made of parts (`backup --snapshot-now`, `prune` of snapshots
/// and repositories) never prints two documents.
pub struct Results {
    output: Format,
    nest: Option<&'static str>,
    doc: serde_json::Map<String, serde_json::Value>,
    targets: Vec<crate::report::metrics::Target>,
}

impl Results {
    /// Nothing collected yet.
    pub fn new(output: Format) -> Results {
        Results {
            output,
            nest: None,
            doc: serde_json::Map::new(),
            targets: Vec::new(),
        }
    }

    /// Parts emitted from now on go under `key` of the JSON document (None: merged at the top).
    pub fn nest(&mut self, key: Option<&'static str>) {
        self.nest = key;
    }

    /// One part: its text is printed now; its JSON object is merged into the document.
    pub fn emit(
        &mut self,
        text: impl FnOnce() -> String,
        json: impl FnOnce() -> serde_json::Value,
    ) -> Result<(), Error> {
        match (self.output, self.nest, json) {
            (Format::Text, ..) => print(&text()),
            (_, Some(key), json) => {
                self.doc.insert(key.to_owned(), json());
                Ok(())
            }
            (_, None, json) => {
                match json() {
                    serde_json::Value::Object(fields) => self.doc.extend(fields),
                    other => {
                        self.doc.insert("result".to_owned(), other);
                    }
                }
                Ok(())
            }
        }
    }

    /// One report: its text printed now, its JSON merged into the document ([`Results::emit`]).
    pub fn report(&mut self, report: &impl Render) -> Result<(), Error> {
        self.targets.extend(report.targets());
        self.emit(|| report.text(), || report.json())
    }

    /// The targets of every report so far (what a Pushgateway gets).
    pub fn targets(&self) -> &[crate::report::metrics::Target] {
        &self.targets
    }

    /// Prints the JSON document, when there is one.
    pub fn finish(self) -> Result<(), Error> {
        if self.output == Format::Json && !self.doc.is_empty() {
            print_json(&serde_json::Value::Object(self.doc))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Format as Output;
    use super::*;
    use serde_json::json;

    #[test]
    fn parts_make_one_document() {
        let mut r = Results::new(Output::Json);
        r.nest(Some("snapshot"));
        r.emit(String::new, || json!({"run": "a"})).unwrap();
        r.nest(None);
        r.emit(String::new, || json!({"run": "b", "jobs": []}))
            .unwrap();
        r.emit(String::new, || json!({"repositories": [1]}))
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(r.doc),
            json!({"snapshot": {"run": "a"}, "run": "b", "jobs": [], "repositories": [1]})
        );
    }

    #[test]
    fn text_collects_nothing() {
        let mut r = Results::new(Output::Text);
        r.emit(String::new, || panic!("no JSON is built for text"))
            .unwrap();
        assert!(r.doc.is_empty());
    }
}
