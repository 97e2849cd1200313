//! LIST: selectors, resourceVersion semantics, and pagination with consistent `continue` snapshots.

use std::sync::Arc;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::cluster::{Cluster, SnapshotKey};
use crate::http::Query;
use crate::registry::ResourceType;
use crate::rest::list_item;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

/// Parsed selectors of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    /// Labels.
    pub labels: LabelSelector,
    /// Fields.
    pub fields: FieldSelector,
    /// Raw label text (cache key).
    pub label_text: String,
    /// Raw field text (cache key).
    pub field_text: String,
}

impl Selectors {
    /// Parse and check `labelSelector` and `fieldSelector` (400 on error).
    pub fn parse(rt: &ResourceType, query: &Query) -> Result<Self, ApiError> {
        let label_text = query.get("labelSelector").unwrap_or("").to_string();
        let field_text = query.get("fieldSelector").unwrap_or("").to_string();
        let labels = LabelSelector::parse(&label_text).map_err(|e| ApiError::bad_request(e.0))?;
        let fields = FieldSelector::parse(&field_text).map_err(|e| ApiError::bad_request(e.0))?;
        fields
            .check_supported(rt.field_labels)
            .map_err(|e| ApiError::bad_request(e.0))?;
        Ok(Selectors {
            labels,
            fields,
            label_text,
            field_text,
        })
    }

    /// Whether an object matches both.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj.pointer("/metadata/labels")) && self.fields.matches(obj)
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Token {
    v: String,
    rv: i64,
    start: String,
}

fn encode_token(rv: i64, start: &str) -> String {
    let t = Token {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.into(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn go_quote_char(b: u8) -> String {
    match b {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        0x20..=0x7e => format!("'{}'", b as char),
        _ => format!("'\\u{b:04x}'"),
    }
}

fn decode_token(s: &str) -> Result<Token, ApiError> {
    // Go's RawURLEncoding is lenient about trailing bits.
    let lenient = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = lenient
        .decode(s)
        .map_err(|e| ApiError::bad_request(format!("invalid continue token: {e}")))?;
    serde_json::from_slice::<Token>(&bytes).map_err(|e| {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let detail = match first {
            Some(b)
                if !matches!(
                    b,
                    b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
                ) =>
            {
                format!(
                    "invalid character {} looking for beginning of value",
                    go_quote_char(b)
                )
            }
            _ => e.to_string(),
        };
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {detail}"
        ))
    })
}

/// A list envelope.
pub fn envelope(
    rt: &ResourceType,
    rv: u64,
    items: Vec<Value>,
    cont: Option<(String, usize)>,
) -> Value {
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    match cont {
        Some((token, remaining)) => {
            meta.insert("continue".into(), json!(token));
            meta.insert("remainingItemCount".into(), json!(remaining));
        }
        None if !rt.builtin => {
            meta.insert("continue".into(), json!(""));
        }
        None => {}
    }
    json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": meta,
           "items": items.into_iter().map(|v| list_item(rt, v)).collect::<Vec<_>>()})
}

/// Handle a list request. `ns` None lists all namespaces.
pub fn list(
    cl: &Cluster,
    rt: &ResourceType,
    ns: Option<&str>,
    query: &Query,
) -> Result<Value, ApiError> {
    let sel = Selectors::parse(rt, query)?;
    let limit = query.int("limit").filter(|l| *l > 0).map(|l| l as usize);
    let rv_param = query.get("resourceVersion").unwrap_or("");
    let rv_match = query.get("resourceVersionMatch").unwrap_or("");
    let key_prefix = ns.map(|n| format!("{n}/")).unwrap_or_default();
    let cache_key = |rv: u64| SnapshotKey {
        rv,
        gr: rt.key(),
        namespace: ns.map(String::from),
        labels: sel.label_text.clone(),
        fields: sel.field_text.clone(),
    };
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        let t = decode_token(token)?;
        let start_key = format!("{key_prefix}{}", t.start);
        let rv = u64::try_from(t.rv).unwrap_or(0);
        let snapshot = match cl.lists.get(&cache_key(rv)) {
            Some(s) => s,
            None if rv == cl.store.current_rv() => Arc::new(filtered(cl, rt, ns, &sel).1),
            None => {
                let mut e = ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                );
                e.metadata
                    .insert("continue".into(), json!(encode_token(-1, &t.start)));
                return Err(e);
            }
        };
        let rest: Vec<(String, Value)> = snapshot
            .iter()
            .filter(|(k, _)| *k >= start_key)
            .cloned()
            .collect();
        return Ok(page(rt, rv, rest, limit, &key_prefix));
    }
    let current = cl.store.current_rv();
    if !rv_param.is_empty() && rv_param != "0" {
        let want: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version: strconv.ParseUint: parsing {rv_param:?}: invalid syntax"
            ))
        })?;
        if want > current {
            return Err(ApiError::too_large_rv(want, current));
        }
        if rv_match == "Exact" && want != current {
            return Err(ApiError::expired(
                "The resourceVersion for the provided list is too old.",
            ));
        }
    }
    let (rv, items) = filtered(cl, rt, ns, &sel);
    let limit = if rv_param == "0" { None } else { limit };
    if let Some(l) = limit
        && items.len() > l
    {
        cl.lists.put(cache_key(rv), Arc::new(items.clone()));
    }
    Ok(page(rt, rv, items, limit, &key_prefix))
}

fn filtered(
    cl: &Cluster,
    rt: &ResourceType,
    ns: Option<&str>,
    sel: &Selectors,
) -> (u64, Vec<(String, Value)>) {
    let (rv, items) = cl.store.list(rt.key(), ns);
    (
        rv,
        items.into_iter().filter(|(_, v)| sel.matches(v)).collect(),
    )
}

fn page(
    rt: &ResourceType,
    rv: u64,
    items: Vec<(String, Value)>,
    limit: Option<usize>,
    key_prefix: &str,
) -> Value {
    match limit {
        Some(l) if items.len() > l => {
            let remaining = items.len() - l;
            let last = items[l - 1]
                .0
                .strip_prefix(key_prefix)
                .unwrap_or(&items[l - 1].0)
                .to_string();
            let token = encode_token(
                i64::try_from(rv).unwrap_or(i64::MAX),
                &format!("{last}\u{0}"),
            );
            let page: Vec<Value> = items.into_iter().take(l).map(|(_, v)| v).collect();
            envelope(rt, rv, page, Some((token, remaining)))
        }
        _ => envelope(rt, rv, items.into_iter().map(|(_, v)| v).collect(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_have_the_real_layout() {
        let t = encode_token(633, "pod-a\u{0}");
        assert_eq!(
            t,
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NjMzLCJzdGFydCI6InBvZC1hXHUwMDAwIn0"
        );
        assert_eq!(decode_token(&t).unwrap().start, "pod-a\u{0}");
        assert_eq!(
            decode_token("garbage").unwrap_err().message,
            "invalid continue token: continue key is not valid: invalid character '\\u0081' looking for beginning of value"
        );
    }
}
