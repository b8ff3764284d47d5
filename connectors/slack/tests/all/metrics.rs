//! The upstream metrics of Slack Web API calls, read from the process registry
//! that `METRICS_ADDR` serves.

use serde_json::json;
use switchboard_proto::slack::v1::GetChannelHistoryRequest;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{BOT_TOKEN, Connector, config};

/// The value of the sample whose line starts with `prefix`, 0 when absent.
fn sample(prefix: &str) -> f64 {
    connector_kit::metrics::encode_prometheus()
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_call_records_its_duration_and_a_429_is_counted_as_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(path("/api/auth.test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "switchboard", "team_id": "T1", "user_id": "U0BOT"}),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.history"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/conversations.history"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "messages": [{"ts": "1712345678.000100", "text": "hello"}]}),
        ))
        .with_priority(2)
        .mount(&server)
        .await;

    let ok = r#"switchboard_upstream_request_duration_seconds_count{connector="slack",operation="conversations.history",status_class="2xx"}"#;
    let limited = r#"switchboard_upstream_request_duration_seconds_count{connector="slack",operation="conversations.history",status_class="4xx"}"#;
    let counted = r#"switchboard_upstream_rate_limited_total{connector="slack",operation="conversations.history"}"#;
    let before = (sample(ok), sample(limited), sample(counted));

    let connector = Connector::start(config(&format!("{}/api", server.uri()))).await;
    connector
        .client()
        .get_channel_history(GetChannelHistoryRequest {
            channel: "C0123ABCD".to_owned(),
            ..Default::default()
        })
        .await
        .expect("history after one 429");

    assert!(sample(ok) - before.0 >= 1.0, "no 2xx sample");
    assert!(
        sample(limited) - before.1 >= 1.0,
        "no 4xx sample for the 429"
    );
    assert!(sample(counted) - before.2 >= 1.0, "the 429 was not counted");
    let text = connector_kit::metrics::encode_prometheus();
    // Labels are method names, never URLs, channel ids or tokens.
    assert!(
        !text.contains("C0123ABCD") && !text.contains(BOT_TOKEN) && !text.contains("127.0.0.1"),
        "{text}"
    );
}
