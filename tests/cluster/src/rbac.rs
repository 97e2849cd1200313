//! Authorization: RBAC evaluation of Roles/ClusterRoles bound by RoleBindings/ClusterRoleBindings, and the
//! Forbidden message of a denial.

use serde_json::Value;

use crate::auth::UserInfo;

/// What a request wants to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `create`, ...
    pub verb: String,
    /// API group (resource requests).
    pub api_group: String,
    /// Resource plural (empty for non-resource requests).
    pub resource: String,
    /// Subresource (`exec`).
    pub subresource: String,
    /// Object name.
    pub name: String,
    /// Namespace (empty for cluster scope).
    pub namespace: String,
    /// Non-resource path (`/api`), when not a resource request.
    pub path: Option<String>,
}

/// The RBAC objects, read from the store.
#[derive(Debug, Clone, Default)]
pub struct RbacData {
    /// ClusterRoles.
    pub cluster_roles: Vec<Value>,
    /// Roles.
    pub roles: Vec<Value>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<Value>,
    /// RoleBindings.
    pub role_bindings: Vec<Value>,
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// `RBAC: allowed by ...` (empty on denial or for system:masters).
    pub reason: String,
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn ns_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether one PolicyRule allows the attributes.
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule.get("verbs"));
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if let Some(path) = &a.path {
        return strs(rule.get("nonResourceURLs")).iter().any(|u| {
            *u == "*"
                || *u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        });
    }
    let groups = strs(rule.get("apiGroups"));
    if !groups.iter().any(|g| *g == "*" || *g == a.api_group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resources = strs(rule.get("resources"));
    let res_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
            || (!a.subresource.is_empty() && *r == format!("{}/*", a.resource))
    });
    if !res_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str()))
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> Option<String> {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match kind {
        "User" if name == user.name => Some(format!("User {name:?}")),
        "Group" if user.groups.iter().any(|g| g == name) => Some(format!("Group {name:?}")),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            (user.service_account() == Some((ns, name)))
                .then(|| format!("ServiceAccount \"{name}/{ns}\""))
        }
        _ => None,
    }
}

impl RbacData {
    fn cluster_role_rules(&self, name: &str) -> Vec<Value> {
        let Some(cr) = self.cluster_roles.iter().find(|r| name_of(r) == name) else {
            return Vec::new();
        };
        let mut rules: Vec<Value> = cr
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(selectors) = cr
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
        {
            for other in &self.cluster_roles {
                if name_of(other) == name {
                    continue;
                }
                let labels = other.pointer("/metadata/labels");
                let hit = selectors.iter().any(|s| {
                    let ml = s.get("matchLabels").and_then(Value::as_object);
                    ml.is_some_and(|ml| {
                        ml.iter()
                            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                    })
                });
                if hit {
                    rules.extend(
                        other
                            .get("rules")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
            }
        }
        rules
    }

    fn role_rules(&self, namespace: &str, name: &str) -> Vec<Value> {
        self.roles
            .iter()
            .find(|r| name_of(r) == name && ns_of(r) == namespace)
            .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// Decide.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        for b in &self.cluster_role_bindings {
            let role = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(who) = b
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|s| subject_matches(s, user, ""))
            else {
                continue;
            };
            if self
                .cluster_role_rules(role)
                .iter()
                .any(|r| rule_allows(r, a))
            {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {role:?} to {who}",
                        name_of(b)
                    ),
                };
            }
        }
        if a.namespace.is_empty() || a.path.is_some() {
            return Decision {
                allowed: false,
                reason: String::new(),
            };
        }
        for b in self
            .role_bindings
            .iter()
            .filter(|b| ns_of(b) == a.namespace)
        {
            let Some(who) = b
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|s| subject_matches(s, user, &a.namespace))
            else {
                continue;
            };
            let kind = b
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let rules = if kind == "ClusterRole" {
                self.cluster_role_rules(role)
            } else {
                self.role_rules(&a.namespace, role)
            };
            if rules.iter().any(|r| rule_allows(r, a)) {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by RoleBinding \"{}/{}\" of {kind} {role:?} to {who}",
                        name_of(b),
                        a.namespace
                    ),
                };
            }
        }
        Decision {
            allowed: false,
            reason: String::new(),
        }
    }
}

/// The Forbidden message for a denied request.
pub fn forbidden_message(user: &UserInfo, a: &Attributes) -> String {
    if let Some(path) = &a.path {
        return format!(
            "forbidden: User {:?} cannot {} path {path:?}",
            user.name, a.verb
        );
    }
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let what = if a.name.is_empty() {
        qualified
    } else {
        format!("{qualified} {:?}", a.name)
    };
    let res = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    format!(
        "{what} is forbidden: User {:?} cannot {} resource {res:?} in API group {:?} {scope}",
        user.name, a.verb, a.api_group
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bob() -> UserInfo {
        UserInfo::new("bob", &["testers", "system:authenticated"])
    }

    fn attrs(verb: &str, res: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: res.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "ref".into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_verbs_subresources_and_names() {
        let rule =
            json!({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]});
        assert!(rule_allows(&rule, &attrs("create", "pods", "exec", "p")));
        assert!(!rule_allows(&rule, &attrs("get", "pods", "", "p")));
        let named = json!({"apiGroups": ["*"], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["*"]});
        assert!(rule_allows(&named, &attrs("get", "configmaps", "", "a")));
        assert!(!rule_allows(&named, &attrs("get", "configmaps", "", "b")));
        assert!(!rule_allows(&named, &attrs("list", "configmaps", "", "")));
        let star = json!({"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]});
        assert!(rule_allows(&star, &attrs("patch", "pods", "status", "p")));
        let nr = json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]});
        assert!(rule_allows(
            &nr,
            &Attributes {
                verb: "get".into(),
                path: Some("/apis/apps".into()),
                ..Default::default()
            }
        ));
    }

    #[test]
    fn bindings_grant_and_give_the_reason() {
        let data = RbacData {
            roles: vec![
                json!({"metadata": {"name": "exec-role", "namespace": "ref"}, "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}]}),
            ],
            role_bindings: vec![
                json!({"metadata": {"name": "bob-exec", "namespace": "ref"}, "roleRef": {"kind": "Role", "name": "exec-role"}, "subjects": [{"kind": "User", "name": "bob"}]}),
            ],
            ..Default::default()
        };
        let d = data.authorize(&bob(), &attrs("create", "pods", "exec", "pod-a"));
        assert_eq!(
            d.reason,
            "RBAC: allowed by RoleBinding \"bob-exec/ref\" of Role \"exec-role\" to User \"bob\""
        );
        assert!(
            !data
                .authorize(&bob(), &attrs("list", "pods", "", ""))
                .allowed
        );
        assert_eq!(
            forbidden_message(&bob(), &attrs("list", "pods", "", "")),
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"ref\""
        );
    }
}
