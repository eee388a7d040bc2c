//! AWS SNS HTTP(S) subscriptions: the JSON body carries an RSA signature (`Signature`,
//! PKCS#1 v1.5 with SHA-1 for `SignatureVersion` 1, SHA-256 for 2) over a canonical string of
//! its own fields, made with the key of the certificate at `SigningCertURL`. As AWS documents
//! it (and its validators, sns-validator and the SDKs' message managers, build it), the string
//! is `name\nvalue\n` for, in this order:
//!
//! - `Notification`: Message, MessageId, Subject (only when present), Timestamp, TopicArn,
//!   Type;
//! - `SubscriptionConfirmation` and `UnsubscribeConfirmation`: Message, MessageId,
//!   SubscribeURL, Timestamp, Token, TopicArn, Type.
//!
//! Before anything is fetched: the topic must be one the source lists (any AWS account can
//! point a topic at a URL), the certificate URL must be `https://sns.<region>.<partition
//! suffix>/SimpleNotificationService-<hex>.pem` with the topic's region, no port, no query.
//! A URL that fails is refused and never fetched. Certificates are fetched through
//! [`crate::fetch`], cached by URL (a certificate URL names one certificate), at most
//! [`CACHE_SIZE`]; a failed fetch is not retried for [`RETRY_AFTER`].
//!
//! A verified `SubscriptionConfirmation` is confirmed (GET `SubscribeURL`, its host checked
//! the same way) only when the source says `confirm_subscription: true`; either way it is
//! delivered as an event saying what happened and what to do. The signature covers
//! `MessageId`, the delivery id.
//!
//! Raw message delivery must be off on the subscription: a raw message carries no signature.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::rsa::{CertKey, Hash};
use super::timestamp::millis;
use super::{shape, Outgoing, Request, SignError, Verified, VerifyError};
use crate::fetch::Fetch;

/// Certificates kept per source. AWS signs with one certificate per region at a time.
pub const CACHE_SIZE: usize = 16;

/// How long a certificate URL whose fetch failed is not fetched again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The DNS suffixes of AWS partitions whose SNS endpoints are `sns.<region>.<suffix>`
/// (commercial, China, European Sovereign Cloud, and the isolated regions), as the AWS SDK's
/// SNS endpoint rules name them.
pub const PARTITION_SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "amazonaws.com.cn",
    "amazonaws.eu",
    "c2s.ic.gov",
    "sc2s.sgov.gov",
    "csp.hci.ic.gov",
    "cloud.adc-e.uk",
];

/// The `x-amz-sns-message-type` values (and `Type`s) SNS sends.
pub const MESSAGE_TYPES: &[&str] = &[
    "Notification",
    "SubscriptionConfirmation",
    "UnsubscribeConfirmation",
];

/// `verify:` of an `aws-sns-signature` source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsOptions {
    /// The topic ARNs accepted; a message from any other topic is refused before its
    /// certificate is fetched.
    pub topics: Vec<String>,
    /// Confirm a `SubscriptionConfirmation` by fetching its `SubscribeURL` (default off: the
    /// event tells the user how to confirm).
    #[serde(default)]
    pub confirm_subscription: bool,
    /// Largest accepted age of `Timestamp` (and distance into the future), in seconds.
    /// Default 3600: SNS retries an HTTP delivery for up to an hour.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    3600
}

/// The SNS scheme with its fetch client and certificate cache.
#[derive(Debug, Clone)]
pub struct Sns {
    options: SnsOptions,
    fetch: Fetch,
    certs: Arc<Mutex<BTreeMap<String, Cached>>>,
}

#[derive(Debug, Clone)]
struct Cached {
    key: Option<CertKey>,
    at: Instant,
}

/// The fields of an SNS message.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "SignatureVersion")]
    signature_version: String,
    #[serde(rename = "Signature")]
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
    #[serde(rename = "SubscribeURL", default)]
    subscribe_url: Option<String>,
    #[serde(rename = "Token", default)]
    token: Option<String>,
}

impl Message {
    /// The string SNS signs for this message's type.
    fn canonical(&self) -> Result<String, VerifyError> {
        let mut fields: Vec<(&str, &str)> = vec![("Message", &self.message), ("MessageId", &self.message_id)];
        if self.kind == "Notification" {
            if let Some(s) = &self.subject {
                fields.push(("Subject", s));
            }
            fields.push(("Timestamp", &self.timestamp));
        } else {
            let url = self.subscribe_url.as_deref().ok_or(VerifyError::Missing)?;
            let token = self.token.as_deref().ok_or(VerifyError::Missing)?;
            fields.extend([
                ("SubscribeURL", url),
                ("Timestamp", &self.timestamp),
                ("Token", token),
            ]);
        }
        fields.extend([
            ("TopicArn", self.topic_arn.as_str()),
            ("Type", self.kind.as_str()),
        ]);
        Ok(fields.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect())
    }

    /// `arn:<partition>:sns:<region>:<account>:<name>` → region.
    fn topic_region(&self) -> Option<&str> {
        let mut parts = self.topic_arn.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("arn"), Some(_), Some("sns"), Some(region)) if !region.is_empty() => Some(region),
            _ => None,
        }
    }
}

/// The region of an AWS SNS host (`sns.us-east-1.amazonaws.com` → `us-east-1`), or `None` for
/// any other host.
pub fn sns_host_region(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sns.")?;
    PARTITION_SUFFIXES.iter().find_map(|suffix| {
        let region = rest.strip_suffix(suffix)?.strip_suffix('.')?;
        let ok = (3..=32).contains(&region.len())
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && region.starts_with(|c: char| c.is_ascii_lowercase())
            && region.ends_with(|c: char| c.is_ascii_digit());
        ok.then_some(region)
    })
}

/// `url` when it is `https://sns.<region>.<suffix>` (no user, no port) with `region`.
fn sns_url(url: &str, region: &str) -> Option<url::Url> {
    let u = url::Url::parse(url).ok()?;
    let host = match u.host()? {
        url::Host::Domain(d) => d,
        _ => return None,
    };
    let fine = u.scheme() == "https"
        && u.username().is_empty()
        && u.password().is_none()
        && u.port().is_none()
        && u.fragment().is_none()
        && sns_host_region(host) == Some(region);
    fine.then_some(u)
}

/// A signing certificate URL AWS would use: an SNS host of `region`,
/// `/SimpleNotificationService-<alphanumerics>.pem`, no query.
pub fn cert_url(url: &str, region: &str) -> Option<url::Url> {
    let u = sns_url(url, region)?;
    let name = u
        .path()
        .strip_prefix("/SimpleNotificationService-")?
        .strip_suffix(".pem")?;
    (u.query().is_none() && !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(u)
}

/// A confirmation URL AWS would send: an SNS host of `region`, path `/`,
/// `Action=ConfirmSubscription`.
pub fn subscribe_url(url: &str, region: &str) -> Option<url::Url> {
    let u = sns_url(url, region)?;
    let confirm = u
        .query_pairs()
        .any(|(k, v)| k == "Action" && v == "ConfirmSubscription");
    (u.path() == "/" && confirm).then_some(u)
}

impl Sns {
    /// The scheme for `options`, fetching through `fetch`.
    pub fn new(options: SnsOptions, fetch: Fetch) -> Result<Self, String> {
        if options.topics.is_empty() {
            return Err("list the topic ARNs this source accepts in `topics`".into());
        }
        for t in &options.topics {
            let region = t.split(':').nth(3).unwrap_or("");
            if !t.starts_with("arn:")
                || t.split(':').count() != 6
                || t.split(':').nth(2) != Some("sns")
                || region.is_empty()
            {
                return Err(format!(
                    "`{t}` is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)"
                ));
            }
        }
        Ok(Sns {
            options,
            fetch,
            certs: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    /// The options.
    pub fn options(&self) -> &SnsOptions {
        &self.options
    }

    /// From the headers: SNS names the message type and the topic in `x-amz-sns-message-type`
    /// and `x-amz-sns-topic-arn`, so a foreign topic is refused before its body is read.
    pub(super) fn precheck(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let kind = req
            .header_str("x-amz-sns-message-type")
            .ok_or(VerifyError::Missing)?;
        if !MESSAGE_TYPES.contains(&kind) {
            return Err(VerifyError::Malformed);
        }
        let topic = req
            .header_str("x-amz-sns-topic-arn")
            .ok_or(VerifyError::Missing)?;
        if !self.options.topics.iter().any(|t| t == topic) {
            return Err(VerifyError::Untrusted(
                "the topic is not one of the source's `topics`",
            ));
        }
        Ok(())
    }

    /// Verifies the body; with `effects`, confirms a subscription when the source opts in.
    pub(super) fn verify(&self, req: &Request<'_>, effects: bool) -> Result<Verified, VerifyError> {
        let m: Message = serde_json::from_slice(req.body).map_err(|_| VerifyError::Missing)?;
        if !MESSAGE_TYPES.contains(&m.kind.as_str()) {
            return Err(VerifyError::Malformed);
        }
        if !self.options.topics.contains(&m.topic_arn) {
            return Err(VerifyError::Untrusted(
                "the topic is not one of the source's `topics`",
            ));
        }
        let hash = match m.signature_version.as_str() {
            "1" => Hash::Sha1,
            "2" => Hash::Sha256,
            _ => return Err(VerifyError::Malformed),
        };
        let region = m.topic_region().ok_or(VerifyError::Malformed)?;
        let url = cert_url(&m.signing_cert_url, region).ok_or(VerifyError::Untrusted(
            "SigningCertURL is not an AWS SNS certificate URL of the topic's region",
        ))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(m.signature.as_bytes())
            .ok()
            .filter(|s| (256..=1024).contains(&s.len()))
            .ok_or(VerifyError::Malformed)?;
        let canonical = m.canonical()?;
        let key = self.certificate(&url)?;
        if !key.verifies(hash, canonical.as_bytes(), &signature) {
            return Err(VerifyError::Mismatch);
        }
        let at = jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.fZ", &m.timestamp)
            .or_else(|_| m.timestamp.parse::<jiff::Timestamp>())
            .map_err(|_| VerifyError::Malformed)?
            .as_millisecond();
        let age = millis(req.now) - at;
        if age.unsigned_abs() > self.options.tolerance_secs.saturating_mul(1000) {
            return Err(VerifyError::Stale);
        }
        if effects && m.kind == "SubscriptionConfirmation" {
            self.confirm(&m, region);
        }
        Ok(Verified {
            signed_at: Some(at),
            ..Verified::by(0).signed(&signature)
        })
    }

    /// GETs `SubscribeURL` when the source opts in; logs what happened either way (never the
    /// URL, whose query holds the confirmation token).
    fn confirm(&self, m: &Message, region: &str) {
        let topic = m.topic_arn.as_str();
        if !self.options.confirm_subscription {
            tracing::warn!(topic, "SNS subscription not confirmed: confirm_subscription is off; the event says how to confirm it");
            return;
        }
        let Some(url) = m.subscribe_url.as_deref().and_then(|u| subscribe_url(u, region)) else {
            tracing::warn!(
                topic,
                "SNS subscription not confirmed: SubscribeURL is not an AWS SNS confirmation URL"
            );
            return;
        };
        match self.fetch.get(&url) {
            Ok(_) => tracing::info!(topic, "SNS subscription confirmed"),
            Err(e) => tracing::warn!(topic, error = %e, "SNS subscription confirmation failed"),
        }
    }

    /// The certificate at `url`, from the cache or fetched.
    fn certificate(&self, url: &url::Url) -> Result<CertKey, VerifyError> {
        let now = Instant::now();
        if let Some(c) = self.certs.lock().expect("cert cache").get(url.as_str()) {
            match &c.key {
                Some(k) => return Ok(k.clone()),
                None if now.duration_since(c.at) < RETRY_AFTER => return Err(VerifyError::KeysUnavailable),
                None => {}
            }
        }
        let fetched = self
            .fetch
            .get(url)
            .map_err(|e| {
                tracing::warn!(error = %e, url = %url, "cannot fetch the SNS signing certificate");
                e
            })
            .ok()
            .and_then(|pem| {
                CertKey::from_pem(&pem)
                    .map_err(|e| tracing::warn!(error = %e, url = %url, "the SNS signing certificate does not parse"))
                    .ok()
            });
        let mut certs = self.certs.lock().expect("cert cache");
        if certs.len() >= CACHE_SIZE && !certs.contains_key(url.as_str()) {
            if let Some(oldest) = certs.iter().min_by_key(|(_, c)| c.at).map(|(u, _)| u.clone()) {
                certs.remove(&oldest);
            }
        }
        certs.insert(
            url.as_str().to_owned(),
            Cached {
                key: fetched.clone(),
                at: now,
            },
        );
        fetched.ok_or(VerifyError::KeysUnavailable)
    }

    /// SNS signs with AWS's private key, which `send` does not have.
    pub(super) fn sign(&self, _out: &Outgoing<'_>) -> Result<Vec<(String, String)>, SignError> {
        Err(SignError(
            "AWS SNS signs with AWS's own key; publish to the topic instead (aws sns publish --topic-arn ...)".into(),
        ))
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let mut lines = vec![
            "scheme: aws-sns-signature, RSA (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) over the message's canonical fields, key from the certificate at SigningCertURL".into(),
            format!("accepted topics: {}", self.options.topics.join(", ")),
            format!(
                "Timestamp window: {} s; subscriptions confirmed automatically: {}",
                self.options.tolerance_secs,
                if self.options.confirm_subscription { "yes" } else { "no" }
            ),
        ];
        match serde_json::from_slice::<Message>(req.body) {
            Ok(m) => {
                let region = m.topic_region().unwrap_or("");
                lines.push(format!(
                    "message: Type {:?}, TopicArn {:?} ({}), SignatureVersion {:?}, Signature ({})",
                    m.kind,
                    m.topic_arn,
                    if self.options.topics.contains(&m.topic_arn) {
                        "accepted"
                    } else {
                        "NOT accepted"
                    },
                    m.signature_version,
                    shape(m.signature.as_bytes())
                ));
                lines.push(format!(
                    "SigningCertURL {:?}: {}",
                    m.signing_cert_url,
                    if cert_url(&m.signing_cert_url, region).is_some() {
                        "an AWS SNS certificate URL of the topic's region (fetched once, then cached)"
                    } else {
                        "NOT an AWS SNS certificate URL of the topic's region: refused, never fetched"
                    }
                ));
                let fields = if m.kind == "Notification" {
                    if m.subject.is_some() {
                        "Message, MessageId, Subject, Timestamp, TopicArn, Type"
                    } else {
                        "Message, MessageId, Timestamp, TopicArn, Type (no Subject)"
                    }
                } else {
                    "Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type"
                };
                lines.push(format!("signed: name\\nvalue\\n for {fields}"));
            }
            Err(_) => lines.push(
                "the body is not an SNS message (JSON with Type, MessageId, TopicArn, Signature, ...)".into(),
            ),
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aws_sns_hosts_of_the_topic_region_pass() {
        let good = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem";
        assert!(cert_url(good, "us-east-1").is_some());
        assert!(cert_url(good, "us-west-2").is_none(), "another region");
        assert!(cert_url(
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
            "cn-north-1"
        )
        .is_some());
        assert!(cert_url(
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "us-gov-west-1"
        )
        .is_some());
        for bad in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
            "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/other.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-../x.pem",
            "https://s3.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.evil.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://127.0.0.1/SimpleNotificationService-abc.pem",
        ] {
            assert!(cert_url(bad, "us-east-1").is_none(), "{bad}");
        }
    }

    #[test]
    fn the_canonical_strings_follow_aws_field_lists() {
        let mut m: Message = serde_json::from_str(
            r#"{"Type":"Notification","MessageId":"id","TopicArn":"arn:aws:sns:us-east-1:1:T","Subject":"S","Message":"M","Timestamp":"t","SignatureVersion":"1","Signature":"x","SigningCertURL":"u"}"#,
        )
        .unwrap();
        assert_eq!(
            m.canonical().unwrap(),
            "Message\nM\nMessageId\nid\nSubject\nS\nTimestamp\nt\nTopicArn\narn:aws:sns:us-east-1:1:T\nType\nNotification\n"
        );
        m.subject = None;
        assert!(!m.canonical().unwrap().contains("Subject"));
        m.kind = "SubscriptionConfirmation".into();
        assert_eq!(m.canonical(), Err(VerifyError::Missing));
        m.subscribe_url = Some("https://s/".into());
        m.token = Some("tok".into());
        m.subject = Some("ignored".into());
        assert_eq!(
            m.canonical().unwrap(),
            "Message\nM\nMessageId\nid\nSubscribeURL\nhttps://s/\nTimestamp\nt\nToken\ntok\nTopicArn\narn:aws:sns:us-east-1:1:T\nType\nSubscriptionConfirmation\n"
        );
    }

    #[test]
    fn confirmation_urls_are_checked_like_certificate_urls() {
        let ok = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37";
        assert!(subscribe_url(ok, "us-west-2").is_some());
        assert!(subscribe_url(
            &ok.replace("sns.us-west-2.amazonaws.com", "attacker.example"),
            "us-west-2"
        )
        .is_none());
        assert!(subscribe_url(&ok.replace("ConfirmSubscription", "Unsubscribe"), "us-west-2").is_none());
    }
}
