//! Who is signed in to the console: sign-ins held server-side, the cookie that names one, the
//! CSRF token of each, and the checks every request passes.
//!
//! - **The cookie** holds a random session id (256 bits), never the token: `HttpOnly`,
//!   `SameSite=Strict`, `Path=/console`, `Secure` when the gateway is reached over TLS. The
//!   table is keyed by the id's SHA-256, so a lookup's timing says nothing about live ids.
//! - **Bounds.** At most `console.max_sessions` sign-ins at once (expired ones are swept
//!   first; one more is refused), each for `console.session_ttl_secs`.
//! - **Every request** looks the token up again: a revoked, expired or deleted token, or one
//!   that lost the permission, ends its sign-ins at once.
//! - **State-changing requests** (POST) carry the sign-in's CSRF token, compared in constant
//!   time, and must not come from another site (`Origin`, `Sec-Fetch-Site`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::http::{header, HeaderMap};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::token::{Token, TokenStatus, ADMIN, CONSOLE};
use crate::store::Store;
use crate::verify::timestamp::millis;

/// The session cookie's name.
pub const COOKIE: &str = "hookwire_console";

/// One sign-in.
#[derive(Clone)]
pub struct SignIn {
    /// The token's name.
    pub token: String,
    /// Its CSRF token: every form of this sign-in carries it.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("token", &self.token)
            .field("csrf", &"<redacted>")
            .finish()
    }
}

/// Who a request is: the sign-in and the token as it stands now.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The sign-in.
    pub sign_in: SignIn,
    /// The token, looked up for this request.
    pub token: Token,
}

impl Viewer {
    /// Whether it has `admin`: sees every source and manages tokens.
    pub fn admin(&self) -> bool {
        self.token.permissions.iter().any(|p| p == ADMIN)
    }

    /// Whether it may see `source`.
    pub fn sees(&self, source: &str) -> bool {
        self.admin() || self.token.sources.iter().any(|s| s == source)
    }
}

/// Whether a token may sign in to the console.
pub fn may_sign_in(token: &Token) -> bool {
    token.permissions.iter().any(|p| p == CONSOLE || p == ADMIN)
}

/// Why a sign-in was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `console.max_sessions` sign-ins are live.
    TooMany,
}

/// The live sign-ins.
pub struct SignIns {
    by_hash: Mutex<HashMap<[u8; 32], SignIn>>,
    max: usize,
    ttl: Duration,
}

fn random_b64() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl SignIns {
    /// At most `max` at once, each for `ttl`.
    pub fn new(max: usize, ttl: Duration) -> Self {
        SignIns {
            by_hash: Mutex::new(HashMap::new()),
            max,
            ttl,
        }
    }

    /// How long a sign-in lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new sign-in for `token`: its session id (for the cookie) and the sign-in.
    pub fn start(&self, token: &str, now: Instant) -> Result<(String, SignIn), Full> {
        let mut map = self.by_hash.lock().expect("sign-ins poisoned");
        map.retain(|_, s| s.expires > now);
        if map.len() >= self.max {
            return Err(Full::TooMany);
        }
        let id = random_b64();
        let sign_in = SignIn {
            token: token.to_owned(),
            csrf: random_b64(),
            expires: now + self.ttl,
        };
        map.insert(key(&id), sign_in.clone());
        Ok((id, sign_in))
    }

    /// The live sign-in a session id names.
    pub fn get(&self, id: &str, now: Instant) -> Option<SignIn> {
        let mut map = self.by_hash.lock().expect("sign-ins poisoned");
        let k = key(id);
        match map.get(&k) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends the sign-in a session id names.
    pub fn end(&self, id: &str) {
        self.by_hash.lock().expect("sign-ins poisoned").remove(&key(id));
    }

    /// Ends every sign-in of `token` (revoked, or lost the permission).
    pub fn end_token(&self, token: &str) {
        self.by_hash
            .lock()
            .expect("sign-ins poisoned")
            .retain(|_, s| s.token != token);
    }
}

/// The session id of a request's cookie, if any.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// The `Set-Cookie` value starting a sign-in.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value ending one.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a form's CSRF token is the sign-in's (constant time).
pub fn csrf_ok(sign_in: &SignIn, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(sign_in.csrf.as_bytes())))
}

/// Whether a state-changing request comes from the console's own pages: `Sec-Fetch-Site`,
/// when the browser sends it (every current one does), is `same-origin`; `Origin`, when sent,
/// names the `Host` the request went to. Under `Referrer-Policy: no-referrer` Chromium sends
/// `Origin: null` with a form's POST, so `null` is taken only beside `Sec-Fetch-Site:
/// same-origin`. A client that sends neither header (not a browser) still needs the CSRF
/// token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site");
    if site.is_some_and(|s| s.as_bytes() != b"same-origin") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin.as_bytes() == b"null" {
        return site.is_some();
    }
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// Looks a sign-in's token up again: `None` (and its sign-ins ended) when it is no longer
/// valid or no longer has the permission.
pub fn current_token(store: &dyn Store, sign_ins: &SignIns, sign_in: &SignIn) -> Option<Token> {
    let token = match store.tokens().get(&sign_in.token) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "console: cannot look up a token");
            return None;
        }
    };
    match token {
        Some(t) if t.status(millis(SystemTime::now())) == TokenStatus::Valid && may_sign_in(&t) => Some(t),
        _ => {
            sign_ins.end_token(&sign_in.token);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sign_ins_are_bounded_expire_and_end() {
        let s = SignIns::new(2, Duration::from_secs(10));
        let now = Instant::now();
        let (a, sa) = s.start("alice", now).unwrap();
        let (b, _) = s.start("bob", now).unwrap();
        assert_ne!(a, b);
        assert_ne!(sa.csrf, a, "the CSRF token is not the session id");
        assert_eq!(s.start("carol", now).unwrap_err(), Full::TooMany);
        assert!(s.get(&a, now).is_some());
        assert!(s.get("forged", now).is_none());
        s.end(&a);
        assert!(s.get(&a, now).is_none());
        let later = now + Duration::from_secs(11);
        assert!(s.get(&b, later).is_none(), "expired");
        let (carol, _) = s.start("carol", later).expect("expired ones are swept");
        s.end_token("carol");
        assert!(s.get(&carol, later).is_none(), "a revoked token's sign-ins end");
    }

    #[test]
    fn cookie_flags_and_parsing() {
        let c = set_cookie("abc", Duration::from_secs(60), true);
        assert_eq!(
            c,
            "hookwire_console=abc; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(!set_cookie("abc", Duration::from_secs(60), false).contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hookwire_console=xyz; b=2"),
        );
        assert_eq!(session_id(&h).as_deref(), Some("xyz"));
        h.insert(header::COOKIE, HeaderValue::from_static("hookwire_console="));
        assert_eq!(session_id(&h), None);
    }

    #[test]
    fn csrf_and_origin_checks() {
        let s = SignIns::new(1, Duration::from_secs(10));
        let (_, sign_in) = s.start("a", Instant::now()).unwrap();
        assert!(csrf_ok(&sign_in, Some(&sign_in.csrf.clone())));
        assert!(!csrf_ok(&sign_in, Some("x")));
        assert!(!csrf_ok(&sign_in, None));
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no browser headers: the CSRF token decides");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8788"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8788"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8788"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
        // A form's POST under no-referrer: `Origin: null`, told apart by Sec-Fetch-Site.
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h));
        h.remove("sec-fetch-site");
        assert!(
            !same_origin(&h),
            "null without Sec-Fetch-Site: a sandboxed frame, say"
        );
    }
}
