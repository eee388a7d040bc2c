//! The one outbound HTTP client of verification: the schemes whose keys the vendor holds
//! (AWS SNS's signing certificate, Google's JWKS) fetch them here, and nowhere else. HTTPS
//! only, no redirects, connect and whole-request timeouts, a response size cap. Callers check
//! a URL's host against the vendor's pattern *before* calling [`Fetch::get`]; this module
//! never widens what is trusted.
//!
//! `fetch:` in config.yaml ([`FetchSettings`]) adjusts it without loosening any host check:
//! `resolve` sends a host's connections to another address (like `curl --resolve`; the URL,
//! the TLS server name and the host checks are unchanged) and `ca_file` adds roots to the
//! built-in web PKI ones. Both exist for tests and for egress proxies that terminate TLS.
//!
//! Every call blocks: `Pipeline::ingest` runs every source of these schemes on the blocking
//! pool, never inline.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

/// `fetch:` of config.yaml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSettings {
    /// Host name → the address its connections go to (`www.googleapis.com: 127.0.0.1:8443`).
    /// The URL keeps its host, so TLS still checks the certificate for that name.
    #[serde(default)]
    pub resolve: BTreeMap<String, SocketAddr>,
    /// PEM certificates trusted as roots besides the built-in web PKI roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for a connection.
    #[serde(default = "default_connect")]
    pub connect_timeout_secs: u64,
    /// Seconds one whole request may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The largest response body read; a larger one is refused.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
}

fn default_connect() -> u64 {
    3
}

fn default_timeout() -> u64 {
    5
}

fn default_max_bytes() -> usize {
    64 * 1024
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            resolve: BTreeMap::new(),
            ca_file: None,
            connect_timeout_secs: default_connect(),
            timeout_secs: default_timeout(),
            max_bytes: default_max_bytes(),
        }
    }
}

/// Why a fetch failed. Never carries a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `https://`.
    #[error("only https URLs are fetched")]
    NotHttps,
    /// This client fetches nothing (`hookwire check`, fuzzing).
    #[error("outbound fetches are off here")]
    Offline,
    /// The server answered with another status than 200 (a redirect included).
    #[error("the server answered {0}")]
    Status(u16),
    /// The body passed `fetch.max_bytes`.
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    /// DNS, connection, TLS or timeout.
    #[error("cannot fetch: {0}")]
    Transport(String),
}

/// A cheap handle on the shared client (clones share it).
#[derive(Clone)]
pub struct Fetch(Arc<Inner>);

struct Inner {
    agent: Option<ureq::Agent>,
    max_bytes: usize,
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch")
            .field("online", &self.0.agent.is_some())
            .field("max_bytes", &self.0.max_bytes)
            .finish()
    }
}

impl Default for Fetch {
    /// The default settings: web PKI roots, no overrides.
    fn default() -> Self {
        Fetch::new(&FetchSettings::default()).expect("the default settings read no file")
    }
}

/// Sends the configured hosts to their fixed addresses, the rest to the system resolver.
struct Overrides(BTreeMap<String, SocketAddr>);

impl ureq::Resolver for Overrides {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let host = netloc.rsplit_once(':').map_or(netloc, |(h, _)| h);
        match self.0.get(&host.to_ascii_lowercase()) {
            Some(addr) => Ok(vec![*addr]),
            None => std::net::ToSocketAddrs::to_socket_addrs(netloc).map(Iterator::collect),
        }
    }
}

impl Fetch {
    /// A client for `settings`; an error names the CA file and what is wrong with it.
    pub fn new(settings: &FetchSettings) -> Result<Fetch, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &settings.ca_file {
            for cert in read_pem_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
            }
        }
        let tls =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let resolve = settings
            .resolve
            .iter()
            .map(|(h, a)| (h.to_ascii_lowercase(), *a))
            .collect();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .resolver(Overrides(resolve))
            .redirects(0)
            .https_only(true)
            .timeout_connect(Duration::from_secs(settings.connect_timeout_secs.max(1)))
            .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
            .user_agent(concat!("hookwire/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Fetch(Arc::new(Inner {
            agent: Some(agent),
            max_bytes: settings.max_bytes,
        })))
    }

    /// A client that refuses every fetch: for loading a config without network use
    /// (`hookwire check`) and for fuzzing.
    pub fn offline() -> Fetch {
        Fetch(Arc::new(Inner {
            agent: None,
            max_bytes: 0,
        }))
    }

    /// GETs `url` (already checked by the caller) and returns its body.
    pub fn get(&self, url: &url::Url) -> Result<Vec<u8>, FetchError> {
        if url.scheme() != "https" {
            return Err(FetchError::NotHttps);
        }
        let agent = self.0.agent.as_ref().ok_or(FetchError::Offline)?;
        let response = match agent.request_url("GET", url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) => return Err(FetchError::Status(code)),
            Err(ureq::Error::Transport(t)) => return Err(FetchError::Transport(transport(&t))),
        };
        if response.status() != 200 {
            return Err(FetchError::Status(response.status()));
        }
        let cap = self.0.max_bytes;
        let mut body = Vec::new();
        response
            .into_reader()
            .take(cap as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| FetchError::Transport(e.kind().to_string()))?;
        if body.len() > cap {
            return Err(FetchError::TooLarge(cap));
        }
        Ok(body)
    }
}

/// A transport error without the URL's query (which may carry a token, as SNS's
/// `SubscribeURL` does).
fn transport(t: &ureq::Transport) -> String {
    let kind = t.kind().to_string();
    match t.message() {
        Some(m) => format!("{kind}: {m}"),
        None => kind,
    }
}

/// The certificates of a PEM file.
fn read_pem_certs(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_is_fetched_and_offline_fetches_nothing() {
        let plain = url::Url::parse("http://sns.us-east-1.amazonaws.com/x.pem").unwrap();
        assert_eq!(Fetch::default().get(&plain), Err(FetchError::NotHttps));
        let tls = url::Url::parse("https://sns.us-east-1.amazonaws.com/x.pem").unwrap();
        assert_eq!(Fetch::offline().get(&tls), Err(FetchError::Offline));
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let settings = FetchSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = Fetch::new(&settings).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
