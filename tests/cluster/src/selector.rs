//! Label and field selectors: parsing with the apimachinery parser's error messages, and matching objects.

use serde_json::Value;

/// A selector parse error; the message is the one kube-apiserver answers with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// A label-selector operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
    /// `in (...)`.
    In,
    /// `notin (...)`.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key > n`.
    Gt,
    /// `key < n`.
    Lt,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: Op,
    /// Values (one for equality, any for sets, none for existence).
    pub values: Vec<String>,
}

/// A parsed label selector (an AND of requirements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements.
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Eos,
    Comma,
    Open,
    Close,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
}

impl Tok {
    fn literal(&self) -> &str {
        match self {
            Tok::Ident(s) => s,
            Tok::Eos => "",
            Tok::Comma => ",",
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Not => "!",
            Tok::Eq => "=",
            Tok::DoubleEq => "==",
            Tok::NotEq => "!=",
            Tok::Gt => ">",
            Tok::Lt => "<",
            Tok::In => "in",
            Tok::NotIn => "notin",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let tok = match two.as_str() {
                "!=" => Some(Tok::NotEq),
                "==" => Some(Tok::DoubleEq),
                _ => None,
            };
            if let Some(t) = tok {
                out.push(t);
                i += 2;
                continue;
            }
            out.push(match c {
                '!' => Tok::Not,
                '=' => Tok::Eq,
                '(' => Tok::Open,
                ')' => Tok::Close,
                ',' => Tok::Comma,
                '>' => Tok::Gt,
                _ => Tok::Lt,
            });
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        out.push(match word.as_str() {
            "in" => Tok::In,
            "notin" => Tok::NotIn,
            _ => Tok::Ident(word),
        });
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    KeyAndOperator,
    Values,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn raw(&self, pos: usize) -> Tok {
        self.toks.get(pos).cloned().unwrap_or(Tok::Eos)
    }
    fn shape(tok: Tok, mode: Mode) -> Tok {
        match (mode, tok) {
            (Mode::Values, Tok::In) => Tok::Ident("in".into()),
            (Mode::Values, Tok::NotIn) => Tok::Ident("notin".into()),
            (_, t) => t,
        }
    }
    fn lookahead(&self, mode: Mode) -> Tok {
        Self::shape(self.raw(self.pos), mode)
    }
    fn consume(&mut self, mode: Mode) -> Tok {
        let t = Self::shape(self.raw(self.pos), mode);
        self.pos += 1;
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut reqs = Vec::new();
        loop {
            match self.lookahead(Mode::Values) {
                Tok::Ident(_) | Tok::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| SelectorError(format!("unable to parse requirement: {e}")))?;
                    reqs.push(r);
                    let t = self.consume(Mode::Values);
                    match t {
                        Tok::Eos => return Ok(reqs),
                        Tok::Comma => {
                            let t2 = self.lookahead(Mode::Values);
                            if !matches!(t2, Tok::Ident(_) | Tok::Not) {
                                return Err(SelectorError(format!(
                                    "found '{}', expected: identifier after ','",
                                    t2.literal()
                                )));
                            }
                        }
                        other => {
                            return Err(SelectorError(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            )));
                        }
                    }
                }
                Tok::Eos => return Ok(reqs),
                other => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    )));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.key_and_operator()?;
        if let Some(op) = op {
            return Ok(Requirement {
                key,
                op,
                values: vec![],
            });
        }
        let op = match self.consume(Mode::KeyAndOperator) {
            Tok::In => Op::In,
            Tok::NotIn => Op::NotIn,
            Tok::Eq | Tok::DoubleEq => Op::Equals,
            Tok::NotEq => Op::NotEquals,
            Tok::Gt => Op::Gt,
            Tok::Lt => Op::Lt,
            other => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    other.literal()
                ));
            }
        };
        let values = match op {
            Op::In | Op::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        validate_values(&key, &op, &values)?;
        Ok(Requirement { key, op, values })
    }

    fn key_and_operator(&mut self) -> Result<(String, Option<Op>), String> {
        let mut tok = self.consume(Mode::Values);
        let mut op = None;
        if tok == Tok::Not {
            op = Some(Op::DoesNotExist);
            tok = self.consume(Mode::Values);
        }
        let Tok::Ident(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.literal()));
        };
        if let Some(msg) = crate::validation::qualified_name_error(&key) {
            return Err(format!("key: Invalid value: {key:?}: {msg}"));
        }
        if matches!(self.lookahead(Mode::Values), Tok::Eos | Tok::Comma) && op.is_none() {
            op = Some(Op::Exists);
        }
        Ok((key, op))
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.lookahead(Mode::Values), Tok::Eos | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.consume(Mode::Values) {
            Tok::Ident(v) => Ok(vec![v]),
            other => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }

    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let t = self.consume(Mode::Values);
        if t != Tok::Open {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        match self.lookahead(Mode::Values) {
            Tok::Ident(_) | Tok::Comma => {
                let vals = self.identifiers()?;
                let t = self.consume(Mode::Values);
                if t != Tok::Close {
                    return Err(format!("found '{}', expected: ')'", t.literal()));
                }
                Ok(vals)
            }
            Tok::Close => {
                self.consume(Mode::Values);
                Ok(vec![String::new()])
            }
            other => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                other.literal()
            )),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        let insert = |set: &mut Vec<String>, v: String| {
            if !set.contains(&v) {
                set.push(v);
            }
        };
        loop {
            match self.consume(Mode::Values) {
                Tok::Ident(v) => {
                    insert(&mut set, v);
                    match self.lookahead(Mode::Values) {
                        Tok::Comma => continue,
                        Tok::Close => return Ok(set),
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.literal()
                            ));
                        }
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        insert(&mut set, String::new());
                    }
                    match self.lookahead(Mode::Values) {
                        Tok::Close => {
                            insert(&mut set, String::new());
                            return Ok(set);
                        }
                        Tok::Comma => {
                            self.consume(Mode::Values);
                            insert(&mut set, String::new());
                        }
                        _ => {}
                    }
                }
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        other.literal()
                    ));
                }
            }
        }
    }
}

fn validate_values(key: &str, op: &Op, values: &[String]) -> Result<(), String> {
    match op {
        Op::Gt | Op::Lt => {
            for v in values {
                if v.parse::<i64>().is_err() {
                    return Err(format!(
                        "values[0]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
        }
        _ => {
            for (i, v) in values.iter().enumerate() {
                if let Some(msg) = crate::validation::label_value_error(v) {
                    return Err(format!("values[{i}][{key}]: Invalid value: {v:?}: {msg}"));
                }
            }
        }
    }
    Ok(())
}

impl LabelSelector {
    /// Parse a selector string (`app=demo,tier in (a,b),!legacy`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            toks: lex(s),
            pos: 0,
        };
        Ok(LabelSelector {
            requirements: p.parse()?,
        })
    }

    /// Whether the labels (a JSON object or absent) match.
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r.op {
            Op::Equals | Op::In => get(&r.key).is_some_and(|v| r.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => {
                get(&r.key).is_none_or(|v| !r.values.iter().any(|x| x == v))
            }
            Op::Exists => get(&r.key).is_some(),
            Op::DoesNotExist => get(&r.key).is_none(),
            Op::Gt | Op::Lt => {
                let (Some(have), Some(want)) = (
                    get(&r.key).and_then(|v| v.parse::<i64>().ok()),
                    r.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if r.op == Op::Gt {
                    have > want
                } else {
                    have < want
                }
            }
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// One field-selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field label (`status.phase`).
    pub field: String,
    /// `true` for `=`/`==`, `false` for `!=`.
    pub equals: bool,
    /// The value.
    pub value: String,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms (ANDed).
    pub terms: Vec<FieldTerm>,
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parse `metadata.name=x,status.phase!=Running`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        if s.is_empty() {
            return Ok(FieldSelector { terms });
        }
        for part in split_unescaped(s, ',') {
            if part.is_empty() {
                continue;
            }
            let found = part.char_indices().find_map(|(i, _)| {
                ["!=", "==", "="]
                    .iter()
                    .find(|op| part[i..].starts_with(**op))
                    .map(|op| (i, *op))
            });
            let Some((i, op)) = found else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldTerm {
                field: unescape(&part[..i]),
                equals: op != "!=",
                value: unescape(&part[i + op.len()..]),
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Check that every field is one of `allowed` (plus metadata.name/namespace).
    pub fn check_supported(&self, allowed: &[&str]) -> Result<(), SelectorError> {
        for t in &self.terms {
            let ok = t.field == "metadata.name"
                || t.field == "metadata.namespace"
                || allowed.contains(&t.field.as_str());
            if !ok {
                return Err(SelectorError(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
        }
        Ok(())
    }

    /// Whether the object matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = field_value(obj, &t.field);
            (have == t.value) == t.equals
        })
    }

    /// The `metadata.name=` value, if the selector pins one.
    pub fn pinned_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equals && t.field == "metadata.name")
            .map(|t| t.value.as_str())
    }
}

/// The string value of a field label on an object (missing → empty, like the real field sets).
pub fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for part in field.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => {
                return match field {
                    "spec.hostNetwork" | "spec.unschedulable" => "false".into(),
                    _ => String::new(),
                };
            }
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.get("ip")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(o) => {
            // source → component; involvedObject handled by the path walk.
            o.get("component")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(s: &str) -> String {
        LabelSelector::parse(s).unwrap_err().0
    }

    #[test]
    fn parse_errors_match_the_apiserver() {
        assert_eq!(
            err("a in ("),
            "unable to parse requirement: found '', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("Bad Key=v"),
            "unable to parse requirement: found 'Key', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            FieldSelector::parse("metadata.name").unwrap_err().0,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=bar")
                .unwrap()
                .check_supported(&["spec.nodeName"])
                .unwrap_err()
                .0,
            "field label not supported: spec.foo"
        );
    }

    #[test]
    fn all_operators_match() {
        let labels = json!({"app": "demo", "tier": "db", "n": "5"});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&labels));
        assert!(m("app=demo"));
        assert!(m("app==demo"));
        assert!(!m("app!=demo"));
        assert!(m("missing!=x"));
        assert!(m("tier in (db, web)"));
        assert!(!m("tier notin (db)"));
        assert!(m("missing notin (db)"));
        assert!(m("app"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app=demo,x notin (y),!z"));
        assert!(m("n>4") && !m("n<4"));
        assert!(m(""));
        assert!(
            LabelSelector::parse("a=b")
                .unwrap()
                .matches(Some(&json!({"a": "b"})))
        );
        assert!(!LabelSelector::parse("a").unwrap().matches(None));
    }

    #[test]
    fn field_selectors_read_missing_fields_as_empty() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Pending"}});
        assert!(
            FieldSelector::parse("spec.nodeName=,status.phase=Pending")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=p")
                .unwrap()
                .matches(&pod)
        );
        assert_eq!(
            FieldSelector::parse("metadata.name==p")
                .unwrap()
                .pinned_name(),
            Some("p")
        );
    }
}
