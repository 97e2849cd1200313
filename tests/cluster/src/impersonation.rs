//! Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`, `Impersonate-Extra-*`), as
//! the apiserver's impersonation filter: every requested attribute is authorized as the verb
//! `impersonate` for the requester, then the request runs as the impersonated user.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::auth::UserInfo;
use crate::rbac::{Attributes, RbacData, forbidden_message};
use crate::status::{ApiError, ResourceName};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// One thing a request asks to impersonate (the filter's `ObjectReference`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    ServiceAccount { namespace: String, name: String },
    User(String),
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

impl Request {
    /// What is authorized: verb `impersonate` on users/groups/serviceaccounts (core) or
    /// uids/userextras (authentication.k8s.io), with the name.
    fn attributes(&self) -> Attributes {
        let (group, resource, sub, name, namespace) = match self {
            Request::ServiceAccount { namespace, name } => {
                ("", "serviceaccounts", "", name.as_str(), namespace.as_str())
            }
            Request::User(n) => ("", "users", "", n.as_str(), ""),
            Request::Group(n) => ("", "groups", "", n.as_str(), ""),
            Request::Extra { key, value } => (
                AUTHENTICATION,
                "userextras",
                key.as_str(),
                value.as_str(),
                "",
            ),
            Request::Uid(u) => (AUTHENTICATION, "uids", "", u.as_str(), ""),
        };
        Attributes {
            verb: "impersonate".into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: namespace.into(),
            path: None,
        }
    }

    /// Go's `%v` of the filter's `v1.ObjectReference` (Kind Namespace Name UID APIVersion
    /// ResourceVersion FieldPath), for the "without impersonating a user" error.
    fn go_format(&self) -> String {
        let (kind, ns, name, api, field) = match self {
            Request::ServiceAccount { namespace, name } => {
                ("ServiceAccount", namespace.as_str(), name.as_str(), "", "")
            }
            Request::User(n) => ("User", "", n.as_str(), "", ""),
            Request::Group(n) => ("Group", "", n.as_str(), "", ""),
            Request::Extra { key, value } => (
                "UserExtra",
                "",
                value.as_str(),
                "authentication.k8s.io/v1",
                key.as_str(),
            ),
            Request::Uid(u) => ("UID", "", u.as_str(), "authentication.k8s.io/v1", ""),
        };
        format!("{{{kind} {ns} {name}  {api}  {field}}}")
    }
}

/// `url.PathUnescape`: `%XX` decoded, anything malformed kept as it is.
fn path_unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        if bytes[i] == b'%' {
            return s.to_string();
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn requests(headers: &HeaderMap) -> Result<Vec<Request>, ApiError> {
    let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let mut out = Vec::new();
    let user = headers.get(USER).map(text).filter(|u| !u.is_empty());
    if let Some(u) = &user {
        let sa = u
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains(':'));
        out.push(match sa {
            Some((namespace, name)) => Request::ServiceAccount {
                namespace: namespace.into(),
                name: name.into(),
            },
            None => Request::User(u.clone()),
        });
    }
    let mut others = false;
    for g in headers.get_all(GROUP) {
        others = true;
        out.push(Request::Group(text(g)));
    }
    let mut seen: Vec<&http::HeaderName> = Vec::new();
    for name in headers.keys() {
        let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) else {
            continue;
        };
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        others = true;
        let key = path_unescape(&key.to_lowercase());
        for v in headers.get_all(name) {
            out.push(Request::Extra {
                key: key.clone(),
                value: text(v),
            });
        }
    }
    if let Some(uid) = headers.get(UID).map(text).filter(|u| !u.is_empty()) {
        others = true;
        out.push(Request::Uid(uid));
    }
    if others && user.is_none() {
        let list: Vec<String> = out.iter().map(Request::go_format).collect();
        return Err(ApiError::internal(format!(
            "requested [{}] without impersonating a user",
            list.join(" ")
        )));
    }
    Ok(out)
}

/// The user a request runs as: the requester, or whom it impersonates once every requested attribute is
/// allowed (403 with the real message for the first that is not).
pub fn impersonate<R: std::borrow::Borrow<RbacData>>(
    requester: UserInfo,
    headers: &HeaderMap,
    rbac: impl FnOnce() -> R,
) -> Result<UserInfo, ApiError> {
    let reqs = requests(headers)?;
    if reqs.is_empty() {
        return Ok(requester);
    }
    let rbac = rbac();
    let rbac: &RbacData = rbac.borrow();
    let groups_given = reqs.iter().any(|r| matches!(r, Request::Group(_)));
    let mut name = String::new();
    let mut uid = String::new();
    let mut groups: Vec<String> = Vec::new();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &reqs {
        let attrs = r.attributes();
        if !rbac.authorize(&requester, &attrs).allowed {
            let res = ResourceName {
                plural: &attrs.resource,
                group: &attrs.api_group,
            };
            return Err(ApiError::forbidden(
                res,
                Some(&attrs.name),
                forbidden_message(&requester, &attrs),
            ));
        }
        match r {
            Request::ServiceAccount { namespace, name: n } => {
                name = format!("system:serviceaccount:{namespace}:{n}");
                if !groups_given {
                    groups = vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Request::User(n) => name = n.clone(),
            Request::Group(g) => groups.push(g.clone()),
            Request::Extra { key, value } => {
                extra.entry(key.clone()).or_default().push(value.clone())
            }
            Request::Uid(u) => uid = u.clone(),
        }
    }
    if name != "system:anonymous" {
        if !groups
            .iter()
            .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
        {
            groups.push("system:authenticated".into());
        }
    } else if !groups.iter().any(|g| g == "system:unauthenticated") {
        groups.push("system:unauthenticated".into());
    }
    Ok(UserInfo {
        name,
        uid,
        groups,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bob() -> UserInfo {
        UserInfo::new("bob", &["system:authenticated"])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn may_impersonate_everything() -> RbacData {
        RbacData {
            cluster_roles: vec![json!({"metadata": {"name": "imp"}, "rules": [
                {"apiGroups": ["", "authentication.k8s.io"], "resources": ["*"], "verbs": ["impersonate"]}]})],
            cluster_role_bindings: vec![
                json!({"metadata": {"name": "imp"}, "roleRef": {"kind": "ClusterRole", "name": "imp"},
                "subjects": [{"kind": "User", "name": "bob"}]}),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn no_headers_keep_the_requester_and_denials_name_the_attribute() {
        assert_eq!(
            impersonate(bob(), &HeaderMap::new(), RbacData::default).unwrap(),
            bob()
        );
        let e = impersonate(
            bob(),
            &headers(&[("Impersonate-User", "nobody")]),
            RbacData::default,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "users \"nobody\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        let e = impersonate(
            bob(),
            &headers(&[("Impersonate-User", "system:serviceaccount:ref:robot")]),
            RbacData::default,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "serviceaccounts \"robot\" is forbidden: User \"bob\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ref\""
        );
        let e = impersonate(
            bob(),
            &headers(&[("Impersonate-Group", "admins")]),
            RbacData::default,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                500,
                "Internal error occurred: requested [{Group  admins    }] without impersonating a user"
            )
        );
    }

    #[test]
    fn groups_extras_uid_and_service_accounts() {
        let h = headers(&[
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "a"),
            ("Impersonate-Group", "b"),
            ("Impersonate-Uid", "u-1"),
            ("Impersonate-Extra-Scopes%2Fx", "read"),
            ("Impersonate-Extra-Scopes%2Fx", "write"),
        ]);
        let u = impersonate(bob(), &h, may_impersonate_everything).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.uid, "u-1");
        assert_eq!(u.groups, vec!["a", "b", "system:authenticated"]);
        assert_eq!(u.extra["scopes/x"], vec!["read", "write"]);
        let sa = impersonate(
            bob(),
            &headers(&[("Impersonate-User", "system:serviceaccount:ref:robot")]),
            may_impersonate_everything,
        )
        .unwrap();
        assert_eq!(
            sa.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ref",
                "system:authenticated"
            ]
        );
        let anon = impersonate(
            bob(),
            &headers(&[("Impersonate-User", "system:anonymous")]),
            may_impersonate_everything,
        )
        .unwrap();
        assert_eq!(anon.groups, vec!["system:unauthenticated"]);
    }
}
