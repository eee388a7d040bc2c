//! Prometheus-style alert groups, the payload Alertmanager and Grafana share: neither sends a
//! delivery id, so one is derived from what makes a notification distinct.

use serde_json::Value;

use crate::verify::sha256_hex;

/// A delivery id for an alert-group notification: the group key, its status, and each alert's
/// fingerprint, status and start, hashed. The same group re-sent unchanged (a retry) has the
/// same id; a new alert joining, or the group resolving, gives a new one.
pub fn group_delivery_id(body: &Value) -> Option<String> {
    let group = body.get("groupKey")?.as_str()?;
    let status = body.get("status").and_then(Value::as_str).unwrap_or("");
    let mut alerts: Vec<String> = body
        .get("alerts")
        .and_then(Value::as_array)
        .map(|alerts| {
            alerts
                .iter()
                .map(|a| {
                    let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
                    format!(
                        "{}|{}|{}",
                        field("fingerprint"),
                        field("status"),
                        field("startsAt")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    alerts.sort();
    Some(sha256_hex(
        format!("{group}\n{status}\n{}", alerts.join("\n")).as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_group_same_id_and_changes_give_new_ids() {
        let a = json!({"groupKey": "{}:{alertname=\"X\"}", "status": "firing",
            "alerts": [{"fingerprint": "f1", "status": "firing", "startsAt": "t"},
                       {"fingerprint": "f2", "status": "firing", "startsAt": "t"}]});
        let mut reordered = a.clone();
        reordered["alerts"].as_array_mut().unwrap().reverse();
        assert_eq!(group_delivery_id(&a), group_delivery_id(&reordered));
        let mut resolved = a.clone();
        resolved["status"] = json!("resolved");
        assert_ne!(group_delivery_id(&a), group_delivery_id(&resolved));
        assert_eq!(group_delivery_id(&json!({"status": "firing"})), None);
    }
}
