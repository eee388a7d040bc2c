//! Dialling the gateway: the session URL as a user writes it, the session token (never from
//! argv, never in an error), TLS trust, and the upgrade request itself, whose refusals say why
//! (a refused token, no hookwire gateway at the URL, TLS, a proxy dropping the subprotocol).
//! [`probe`] connects once the same way for `hookwire doctor`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Uri};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::Connector;

use super::task::{next_text, Ended};
use super::{LinkOptions, Ws, TOKEN_ENV};
use crate::link_protocol::{close, Hello, ServerFrame, MAX_SERVER_FRAME, PROTOCOL, SESSION_PATH};
use crate::secret::Secret;

/// The session endpoint for a gateway URL as a user writes it: `https://` and `http://` map
/// to `wss://` and `ws://`, and `/v1/session` is appended to the path unless it is there.
pub fn session_url(gateway: &str) -> Result<String, String> {
    let g = gateway.trim();
    let bad = |why: &str| format!("--gateway {g}: {why}");
    let (scheme, rest) = g
        .split_once("://")
        .ok_or_else(|| bad("write the URL with its scheme, e.g. https://hooks.example.com"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        _ => return Err(bad("the scheme must be https, http, wss or ws")),
    };
    if rest.contains(['?', '#']) {
        return Err(bad("no query or fragment"));
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, String::new()),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad(
            "no credentials in the URL: the token goes in HOOKWIRE_TOKEN or --token-file",
        ));
    }
    let path = path.trim_end_matches('/');
    let path = if path.ends_with(SESSION_PATH) {
        path.to_owned()
    } else {
        format!("{path}{SESSION_PATH}")
    };
    let url = format!("{scheme}://{authority}{path}");
    url.parse::<Uri>().map_err(|e| bad(&e.to_string()))?;
    Ok(url)
}

/// The session token: from `file` when given, else from `HOOKWIRE_TOKEN`. Never from argv,
/// which other users of the machine can read. Errors never contain the token. A token that
/// is empty or still an unexpanded reference (`${HOOKWIRE_TOKEN}`, what Claude Code passes
/// from `.mcp.json` when the variable is not exported) is refused like any other secret.
pub fn read_token(file: Option<&Path>) -> Result<Secret, String> {
    let export = || crate::secret::SecretError::EnvMissing(TOKEN_ENV.into()).hint("--token-file PATH");
    let (raw, from) = match file {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| format!("cannot read the token file {}: {e}", p.display()))?,
            format!("the token file {}", p.display()),
        ),
        None => (
            std::env::var(TOKEN_ENV).map_err(|_| {
                format!("no session token: {TOKEN_ENV} is not set (an admin creates one with `hookwire token create`); {}", export())
            })?,
            format!("environment variable {TOKEN_ENV}"),
        ),
    };
    let token = raw.trim();
    if let Err(e) = crate::secret::check(token.as_bytes(), &from) {
        let hint = if file.is_some() {
            "write the token itself in the file".to_owned()
        } else {
            export()
        };
        return Err(format!("the session token: {e}; {hint}"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the session token in {from} has characters a token cannot have"
        ));
    }
    Ok(Secret::new(token.as_bytes()))
}

/// TLS trusting only the CA certificates in a PEM file (a gateway with a private CA).
pub fn tls_with_ca(path: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    crate::gateway::install_crypto_provider();
    let bad = |e: &dyn std::fmt::Display| format!("--ca-file {}: {e}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Whether `url`'s host is this machine (a token sent there in clear text stays on it).
pub(super) fn is_loopback(url: &str) -> bool {
    url.parse::<Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        })
}

/// Why a connection attempt failed.
pub(super) enum ConnectError {
    /// 401: the token is unknown, revoked or expired (the gateway's one-word reason).
    Refused(String),
    /// Anything else, said in full.
    Other(String),
}

/// The upgrade request: bearer token (marked sensitive) and subprotocol.
pub(super) async fn connect(opts: &LinkOptions) -> Result<Ws, ConnectError> {
    let mut req = opts
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Other(e.to_string()))?;
    let token = std::str::from_utf8(opts.token.expose()).unwrap_or_default();
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ConnectError::Other("the token is not a valid header value".into()))?;
    auth.set_sensitive(true);
    req.headers_mut().insert(header::AUTHORIZATION, auth);
    req.headers_mut()
        .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
    let connector = opts.tls.clone().map(Connector::Rustls);
    let limits = WebSocketConfig::default()
        .max_message_size(Some(MAX_SERVER_FRAME))
        .max_frame_size(Some(MAX_SERVER_FRAME));
    match tokio_tungstenite::connect_async_tls_with_config(req, Some(limits), true, connector).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .trim()
                        .chars()
                        .take(80)
                        .filter(|c| !c.is_control())
                        .collect::<String>()
                })
                .unwrap_or_default();
            if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
                Err(ConnectError::Refused(if body.is_empty() {
                    "unauthorized".into()
                } else {
                    body
                }))
            } else if resp.status() == axum::http::StatusCode::NOT_FOUND {
                Err(ConnectError::Other(format!(
                    "HTTP 404 {body}: no hookwire gateway at this URL (it serves {SESSION_PATH})"
                )))
            } else {
                Err(ConnectError::Other(format!("HTTP {} {body}", resp.status())))
            }
        }
        Err(tungstenite::Error::Io(e)) => Err(ConnectError::Other(
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => format!(
                    "TLS failed: {tls} (a gateway whose certificate a private CA signed needs --ca-file PEM)"
                ),
                None => format!("cannot reach the gateway: {e}"),
            },
        )),
        Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        )) => Err(ConnectError::Other(format!(
            "the server did not agree to the {PROTOCOL} WebSocket subprotocol: not a hookwire gateway, or a proxy in front of it drops Sec-WebSocket-Protocol"
        ))),
        Err(e) => Err(ConnectError::Other(e.to_string())),
    }
}

/// Connects once as the channel does (same request, token and TLS), reads the gateway's
/// `hello` and closes the connection normally: for `hookwire doctor --gateway`. Nothing is
/// acknowledged, so the session's events stay for the channel. While it lasts, this
/// connection takes over a live session of the same token (which reconnects by itself).
/// The error says why no `hello` came: unreachable, TLS, a refused token (401 `unknown`,
/// `revoked` or `expired`), not a hookwire gateway.
pub async fn probe(opts: &LinkOptions, limit: Duration) -> Result<Hello, String> {
    let mut ws = match tokio::time::timeout(limit, connect(opts)).await {
        Err(_) => return Err(format!("no answer within {} s", limit.as_secs())),
        Ok(Err(ConnectError::Refused(reason))) => {
            return Err(format!("401: the gateway refused the token ({reason})"))
        }
        Ok(Err(ConnectError::Other(e))) => return Err(e),
        Ok(Ok(ws)) => ws,
    };
    let hello = match tokio::time::timeout(limit, next_text(&mut ws)).await {
        Err(_) => Err("connected, but no hello from the gateway in time".to_owned()),
        Ok(Err(Ended::Closed(code, reason))) => Err(format!(
            "connected, then the gateway closed the session ({code} {reason})"
        )),
        Ok(Err(Ended::Lost(e) | Ended::Protocol(e))) => Err(format!("connected, then {e}")),
        Ok(Err(Ended::Stopped)) => Err("stopped".to_owned()),
        Ok(Ok(text)) => match ServerFrame::decode(&text) {
            Ok(ServerFrame::Hello(h)) => Ok(h),
            _ => Err(format!("the first frame is not a {PROTOCOL} hello")),
        },
    };
    // A clean close: our close frame, then the gateway's answer (events it sent meanwhile
    // are dropped unacknowledged, so they stay queued for the channel).
    let frame = CloseFrame {
        code: CloseCode::from(close::NORMAL),
        reason: "hookwire doctor".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
    hello
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_map_to_the_session_endpoint() {
        assert_eq!(
            session_url("https://hooks.example.com").unwrap(),
            "wss://hooks.example.com/v1/session"
        );
        assert_eq!(
            session_url("http://127.0.0.1:8790/").unwrap(),
            "ws://127.0.0.1:8790/v1/session"
        );
        assert_eq!(
            session_url("wss://h/hookwire").unwrap(),
            "wss://h/hookwire/v1/session"
        );
        assert_eq!(session_url("ws://h:1/v1/session").unwrap(), "ws://h:1/v1/session");
        assert!(session_url("hooks.example.com").is_err());
        assert!(session_url("ftp://h").is_err());
        assert!(session_url("https://user:pw@h").is_err());
        assert!(session_url("https://h/?t=1").is_err());
        assert!(is_loopback("ws://127.0.0.1:1/v1/session"));
        assert!(is_loopback("ws://[::1]:1/v1/session"));
        assert!(!is_loopback("ws://hooks.example.com/v1/session"));
    }

    #[test]
    fn tokens_come_from_a_file_trimmed_and_never_appear_in_errors() {
        let dir = std::env::temp_dir().join(format!("hookwire-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "hwt_abc\n").unwrap();
        assert_eq!(read_token(Some(&f)).unwrap().expose(), b"hwt_abc");
        std::fs::write(&f, "hwt_a bc").unwrap();
        let e = read_token(Some(&f)).unwrap_err();
        assert!(!e.contains("hwt_a"), "{e}");
        std::fs::write(&f, "  \n").unwrap();
        assert!(read_token(Some(&f)).unwrap_err().contains("empty"));
        std::fs::write(&f, "${HOOKWIRE_TOKEN}\n").unwrap();
        let e = read_token(Some(&f)).unwrap_err();
        assert!(
            e.contains("unexpanded") && !e.contains("${HOOKWIRE_TOKEN}"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
