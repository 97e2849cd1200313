//! Authentication: bearer tokens to users (static users, the admin, ServiceAccount tokens minted by TokenRequest).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::status::ApiError;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name (`system:serviceaccount:ns:name` for ServiceAccounts).
    pub name: String,
    /// User uid.
    pub uid: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The user `name` in `groups`, without uid or extras.
    pub fn new(name: &str, groups: &[&str]) -> Self {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            extra: BTreeMap::new(),
        }
    }
    /// The anonymous user.
    pub fn anonymous() -> Self {
        UserInfo::new("system:anonymous", &["system:unauthenticated"])
    }
    /// The ServiceAccount `(namespace, name)` if this user is one.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix("system:serviceaccount:")?;
        rest.split_once(':')
    }
}

/// A static user given at start-up.
#[derive(Debug, Clone)]
pub struct StaticUser {
    /// The bearer token.
    pub token: String,
    /// The user name.
    pub name: String,
    /// Groups (system:authenticated is added).
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
enum Entry {
    User(UserInfo),
    ServiceAccount {
        namespace: String,
        name: String,
        uid: String,
        expires: Timestamp,
        jti: String,
    },
}

/// The token table of one server.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: Mutex<HashMap<String, Entry>>,
}

/// What TokenRequest asks for.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// Audiences.
    pub audiences: Vec<String>,
    /// Lifetime.
    pub expiration_seconds: i64,
    /// The bound object, echoed into the claims.
    pub bound_object: Option<Value>,
}

/// A random token-ish string.
pub fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// A random uid in the usual 8-4-4-4-12 layout.
pub fn random_uid() -> String {
    let hex = |n: usize| {
        (0..n)
            .map(|_| format!("{:x}", fastrand::u8(..16)))
            .collect::<String>()
    };
    format!("{}-{}-4{}-{}-{}", hex(8), hex(4), hex(3), hex(4), hex(12))
}

impl Authenticator {
    /// Register a static user token.
    pub fn add_user(&self, token: &str, name: &str, groups: &[String]) {
        let mut groups = groups.to_vec();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        let user = UserInfo {
            name: name.into(),
            uid: format!("uid-{name}"),
            groups,
            extra: BTreeMap::new(),
        };
        self.lock().insert(token.into(), Entry::User(user));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Authenticate an `Authorization` header; `sa_uid` looks up a live ServiceAccount's uid.
    pub fn authenticate(
        &self,
        header: Option<&str>,
        sa_uid: impl Fn(&str, &str) -> Option<String>,
    ) -> Result<UserInfo, ApiError> {
        let Some(h) = header else {
            return Ok(UserInfo::anonymous());
        };
        let Some(token) = h.strip_prefix("Bearer ").map(str::trim) else {
            return Err(ApiError::unauthorized());
        };
        let entry = self.lock().get(token).cloned();
        match entry {
            Some(Entry::User(u)) => Ok(u),
            Some(Entry::ServiceAccount {
                namespace,
                name,
                uid,
                expires,
                jti,
            }) => {
                if Timestamp::now() > expires
                    || sa_uid(&namespace, &name).as_deref() != Some(uid.as_str())
                {
                    return Err(ApiError::unauthorized());
                }
                let mut extra = BTreeMap::new();
                extra.insert(
                    "authentication.kubernetes.io/credential-id".into(),
                    vec![format!("JTI={jti}")],
                );
                Ok(UserInfo {
                    name: format!("system:serviceaccount:{namespace}:{name}"),
                    uid,
                    groups: vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{namespace}"),
                        "system:authenticated".into(),
                    ],
                    extra,
                })
            }
            None => Err(ApiError::unauthorized()),
        }
    }

    /// Mint a JWT-shaped token for a ServiceAccount; returns it and its expiry.
    pub fn mint(
        &self,
        issuer: &str,
        namespace: &str,
        name: &str,
        uid: &str,
        spec: &TokenSpec,
    ) -> (String, Timestamp) {
        let now = Timestamp::now();
        let exp = now
            .checked_add(SignedDuration::from_secs(spec.expiration_seconds))
            .unwrap_or(now);
        let jti = random_uid();
        let header = json!({"alg": "RS256", "kid": "kentledge-testcluster"});
        let mut k8s = json!({"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}});
        if let Some(b) = &spec.bound_object
            && let (Some(kind), Some(m)) =
                (b.get("kind").and_then(Value::as_str), k8s.as_object_mut())
        {
            m.insert(
                kind.to_lowercase(),
                json!({"name": b.get("name"), "uid": b.get("uid")}),
            );
        }
        let claims = json!({
            "aud": spec.audiences, "exp": exp.as_second(), "iat": now.as_second(), "nbf": now.as_second(),
            "iss": issuer, "jti": jti, "sub": format!("system:serviceaccount:{namespace}:{name}"), "kubernetes.io": k8s,
        });
        let sig: Vec<u8> = (0..64).map(|_| fastrand::u8(..)).collect();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(sig)
        );
        self.lock().insert(
            token.clone(),
            Entry::ServiceAccount {
                namespace: namespace.into(),
                name: name.into(),
                uid: uid.into(),
                expires: exp,
                jti,
            },
        );
        (token, exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_users_and_service_accounts() {
        let a = Authenticator::default();
        a.add_user("t1", "bob", &["testers".into()]);
        let bob = a.authenticate(Some("Bearer t1"), |_, _| None).unwrap();
        assert_eq!(bob.groups, vec!["testers", "system:authenticated"]);
        assert_eq!(
            a.authenticate(None, |_, _| None).unwrap().name,
            "system:anonymous"
        );
        assert_eq!(
            a.authenticate(Some("Bearer nope"), |_, _| None)
                .unwrap_err()
                .code,
            401
        );
        let spec = TokenSpec {
            audiences: vec!["x".into()],
            expiration_seconds: 3600,
            bound_object: None,
        };
        let (tok, _) = a.mint("iss", "ref", "robot", "u1", &spec);
        let sa = a
            .authenticate(Some(&format!("Bearer {tok}")), |_, _| Some("u1".into()))
            .unwrap();
        assert_eq!(sa.name, "system:serviceaccount:ref:robot");
        assert_eq!(sa.service_account(), Some(("ref", "robot")));
        assert!(
            a.authenticate(Some(&format!("Bearer {tok}")), |_, _| Some("other".into()))
                .is_err()
        );
    }
}
