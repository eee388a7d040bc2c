//! Twilio: `X-Twilio-Signature` = base64 HMAC-SHA1 (key: the Auth Token) over the URL exactly as
//! Twilio requested it followed by every POST parameter sorted by name (`name` + `value`). A
//! JSON body is covered through `bodySHA256=<hex>` in the URL's query instead. Twilio is
//! inconsistent about ports, so the URL is tried without a port and with the scheme's default
//! port, as the official SDKs do. The URL comes from the source's `public_url`: a gateway behind
//! a proxy must never rebuild it from the inner request.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::codec::{Digest, Encoding, KeyedMac};
use super::{sha256_hex, shape, Key, Outgoing, Request, SignError, Verified, VerifyError};
use crate::secret::Secret;

const HEADER: &str = "x-twilio-signature";

/// Twilio has no settings beyond the source's `public_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Twilio {}

/// `scheme://authority` split from the rest, with the port separated.
struct Url<'u> {
    scheme: &'u str,
    host: &'u str,
    port: Option<&'u str>,
    rest: &'u str,
}

fn split_url(url: &str) -> Option<Url<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // Keep any userinfo with the host; the port is after the last ':' outside brackets.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    Some(Url {
        scheme,
        host,
        port,
        rest,
    })
}

/// The URL variants the SDKs try: without any port, and with the given or default port.
fn url_variants(url: &str) -> Vec<String> {
    let Some(u) = split_url(url) else {
        return vec![url.to_owned()];
    };
    let bare = format!("{}://{}{}", u.scheme, u.host, u.rest);
    let with_port = match u.port {
        Some(_) => url.to_owned(),
        None => {
            let default = if u.scheme.eq_ignore_ascii_case("https") {
                "443"
            } else {
                "80"
            };
            format!("{}://{}:{default}{}", u.scheme, u.host, u.rest)
        }
    };
    vec![bare, with_port]
}

fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The sorted `name + value` string of a form body; repeated names sort their values and drop
/// exact duplicates (twilio-python).
fn sorted_params(body: &[u8]) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    pairs.sort();
    pairs.dedup();
    pairs.into_iter().map(|(k, v)| k + &v).collect()
}

impl Twilio {
    fn tail(&self, url: &str, body: &[u8]) -> Result<String, VerifyError> {
        match query_param(url, "bodySHA256") {
            Some(want) => {
                let got = sha256_hex(body);
                if bool::from(got.as_bytes().ct_eq(want.to_ascii_lowercase().as_bytes())) {
                    Ok(String::new())
                } else {
                    Err(VerifyError::Mismatch)
                }
            }
            None => Ok(sorted_params(body)),
        }
    }

    /// The signature header, decoded: present and of an HMAC-SHA1's length.
    fn given(req: &Request<'_>) -> Result<Vec<u8>, VerifyError> {
        let given = req
            .header(HEADER)
            .filter(|v| !v.is_empty())
            .ok_or(VerifyError::Missing)?;
        Encoding::Base64
            .decode(given.trim_ascii())
            .filter(|g| g.len() == Digest::Sha1.output_len())
            .ok_or(VerifyError::Malformed)
    }

    /// The headers alone: a well-formed signature, and a public URL to check it against.
    pub(super) fn precheck(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        Self::given(req)?;
        req.url.map(|_| ()).ok_or(VerifyError::Unconfigured("public_url"))
    }

    /// The header that carries the signature: never stored or shown.
    pub(super) fn credential_headers(&self) -> Vec<String> {
        vec![HEADER.into()]
    }

    pub(super) fn verify(&self, req: &Request<'_>, keys: &[Key]) -> Result<Verified, VerifyError> {
        let given = Self::given(req)?;
        let url = req.url.ok_or(VerifyError::Unconfigured("public_url"))?;
        let tail = self.tail(url, req.body)?;
        let variants = url_variants(url);
        for (i, key) in keys.iter().enumerate() {
            let Key::Mac(mac) = key else { continue };
            let mut hit = false;
            for v in &variants {
                let mut mac = mac.clone();
                mac.update(v.as_bytes());
                mac.update(tail.as_bytes());
                hit |= mac.finish().matches(&given);
            }
            if hit {
                // A match means the MAC equals the presented signature.
                return Ok(Verified::by(i).signed(&given));
            }
        }
        Err(VerifyError::Mismatch)
    }

    pub(super) fn sign(
        &self,
        out: &Outgoing<'_>,
        secret: &Secret,
    ) -> Result<Vec<(String, String)>, SignError> {
        if query_param(out.url, "bodySHA256").is_some() {
            return Err(SignError(
                "send a form body; a JSON body's URL would need bodySHA256".into(),
            ));
        }
        let mut mac = KeyedMac::new(Digest::Sha1, secret.expose());
        mac.update(out.url.as_bytes());
        mac.update(sorted_params(out.body).as_bytes());
        Ok(vec![
            (HEADER.into(), Encoding::Base64.encode(mac.finish().as_bytes())),
            ("content-type".into(), "application/x-www-form-urlencoded".into()),
        ])
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let mut lines = vec!["scheme: twilio, base64 HMAC-SHA1 in `X-Twilio-Signature`".to_owned()];
        match req.url {
            None => lines.push("public URL: not configured (set public_url on the source)".into()),
            Some(url) => {
                lines.push(format!("URL variants tried: {:?}", url_variants(url)));
                match query_param(url, "bodySHA256") {
                    Some(_) => lines.push(format!(
                        "signed content: URL only; the body ({}) must match bodySHA256",
                        shape(req.body)
                    )),
                    None => lines.push(format!(
                        "signed content: URL + {} sorted form parameters",
                        form_urlencoded::parse(req.body).count()
                    )),
                }
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants() {
        assert_eq!(
            url_variants("https://a.com/x?y=1"),
            ["https://a.com/x?y=1", "https://a.com:443/x?y=1"]
        );
        assert_eq!(
            url_variants("http://a.com:1234/x"),
            ["http://a.com/x", "http://a.com:1234/x"]
        );
        assert_eq!(
            url_variants("https://[::1]/x"),
            ["https://[::1]/x", "https://[::1]:443/x"]
        );
    }
}
