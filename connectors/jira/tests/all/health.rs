//! Health: NOT_SERVING until `GET /myself` succeeds, never while unconfigured or
//! while Jira rejects the credentials.

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support;

/// Waits (on the Watch stream, no polling) until the connector reports `wanted`.
pub async fn wait_for(health: &mut HealthClient<Channel>, wanted: ServingStatus) {
    let mut stream = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch health")
        .into_inner();
    while let Some(update) = stream.message().await.expect("health stream") {
        if update.status() == wanted {
            return;
        }
    }
    panic!("health stream ended before {wanted:?}");
}

async fn status(health: &mut HealthClient<Channel>) -> ServingStatus {
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status()
}

#[tokio::test]
async fn an_unconfigured_connector_is_not_serving_and_names_the_variables() {
    let mut c = support::start(jira_connector::Config::new(None)).await;
    assert_eq!(status(&mut c.health).await, ServingStatus::NotServing);
    let err = c
        .client
        .get_issue(switchboard_proto::jira::v1::GetIssueRequest {
            key: "PROJ-1".into(),
            ..Default::default()
        })
        .await
        .expect_err("unconfigured");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    for var in ["JIRA_BASE_URL", "JIRA_EMAIL", "JIRA_API_TOKEN", "JIRA_PAT"] {
        assert!(err.message().contains(var), "{}", err.message());
    }
}

#[tokio::test]
async fn accepted_credentials_turn_the_connector_serving() {
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .and(header(
            "authorization",
            support::basic_auth_header().as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"accountId": "bot"})),
        )
        .expect(1..)
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    wait_for(&mut c.health, ServingStatus::Serving).await;
    assert_eq!(status(&mut c.health).await, ServingStatus::Serving);
}

#[tokio::test]
async fn rejected_credentials_keep_the_connector_not_serving() {
    let jira = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1..)
        .mount(&jira)
        .await;
    let mut c = support::start(support::cloud(&jira.uri())).await;
    // The first check has run once Jira saw the request.
    while jira
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(status(&mut c.health).await, ServingStatus::NotServing);
}
