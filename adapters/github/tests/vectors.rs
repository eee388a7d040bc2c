//! The GitHub entries of the shared known-answer vectors (`../shared/fixtures/vectors.json`),
//! run through the adapter's verifier: valid ones verify, invalid ones fail. The file is read
//! at test time, so new GitHub vectors are picked up without code changes.

use std::path::PathBuf;
use std::time::SystemTime;

use hookwire_core::adapter::{Adapter, Request};
use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::secret::{Secret, SecretSet};
use hookwire_core::verify::VerifyError;
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/vectors.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

fn headers(v: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, val) in v["headers"].as_object().unwrap() {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(val.as_str().unwrap()).unwrap(),
        );
    }
    h
}

#[test]
fn github_vectors() {
    let all = vectors();
    let github: Vec<_> = all.iter().filter(|v| v["vendor"] == "github").collect();
    assert!(github.len() >= 7, "expected the GitHub vectors");
    let mut checked = 0;
    for v in github {
        let id = v["id"].as_str().unwrap();
        let body = v["body"]
            .as_str()
            .expect("GitHub vectors carry the body inline")
            .as_bytes();
        let secret = Secret::new(v["secret"].as_str().unwrap().as_bytes().to_vec());
        let adapter = hookwire_adapter_github::GitHub::new(SecretSet::new(vec![secret]));
        let h = headers(v);
        let got = adapter.verify(&Request {
            headers: &h,
            body,
            now: SystemTime::now(),
        });
        match (v["scheme"].as_str().unwrap(), v["expect"].as_str().unwrap()) {
            ("github-hmac-sha256", "valid") => assert!(got.is_ok(), "{id}: {got:?}"),
            ("github-hmac-sha256", "invalid") => assert!(got.is_err(), "{id} verified but must not"),
            // hookwire accepts only X-Hub-Signature-256 (GitHub always sends it); a request
            // carrying only the legacy SHA-1 header is refused as unsigned.
            ("github-hmac-sha1", _) => assert_eq!(got, Err(VerifyError::Missing), "{id}"),
            (scheme, expect) => panic!("{id}: unexpected scheme {scheme} / {expect}"),
        }
        checked += 1;
    }
    assert!(checked >= 7);
}
