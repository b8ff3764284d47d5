//! Connectors that go away, come back, get upgraded, or are not serving.

use std::time::Duration;

use integration_tests::process::{Connector, HttpRouter, free_port};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_killed_connector_fails_fast_and_its_return_is_announced() {
    let mut calc = calculator().await;
    let (client, recorder) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;
    let ok = call(&client, "calculator_add", json!({"a": 1, "b": 1})).await;
    assert!(!is_error(&ok), "{}", text(&ok));

    calc.process.kill().await.expect("kill connector");
    // The router notices through the health stream; from then on calls fail at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let message = loop {
        let r = call(&client, "calculator_add", json!({"a": 1, "b": 1})).await;
        let message = text(&r);
        if is_error(&r) && message.contains("cannot be called now") {
            break message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls never failed fast: {message}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        message.contains("connector \"calculator\" is unreachable"),
        "{message}"
    );
    assert!(message.contains("retry later"), "{message}");
    assert!(
        tool_names(&client)
            .await
            .contains(&"calculator_add".to_owned()),
        "tools stay listed while the connector is briefly down"
    );

    let seen = *recorder.list_changed.borrow();
    restart(&mut calc, &[]).await;
    wait_list_changed(&recorder, seen).await;
    let back = call(&client, "calculator_add", json!({"a": 2, "b": 2})).await;
    assert_eq!(
        back.structured_content,
        Some(json!({"sum": 4})),
        "{}",
        text(&back)
    );
}

#[tokio::test]
async fn an_upgraded_connector_gains_its_new_tool_without_a_router_restart() {
    let mut calc = calculator().await;
    let (client, recorder) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;
    assert!(
        !tool_names(&client)
            .await
            .contains(&"calculator_power".to_owned())
    );

    let seen = *recorder.list_changed.borrow();
    restart(&mut calc, &[("TEST_PROTO_VERSION", "2")]).await;
    wait_list_changed(&recorder, seen).await;
    wait_for_tools(&client, &recorder, "calculator_power", |names| {
        names.iter().any(|n| n == "calculator_power")
    })
    .await;

    let names = tool_names(&client).await;
    assert!(names.contains(&"calculator_power".to_owned()), "{names:?}");
    let power = find_tool(&client, "calculator_power").await;
    assert!(
        power
            .description
            .unwrap_or_default()
            .contains("added in the second version")
    );
    let result = call(
        &client,
        "calculator_power",
        json!({"base": 2, "exponent": 10}),
    )
    .await;
    assert_eq!(result.structured_content, Some(json!({"value": 1024})));
}

#[tokio::test]
async fn a_not_serving_connector_keeps_its_tools_hidden() {
    let calc = calculator().await;
    let idle = Connector::start("test-connector", 0, &[("TEST_NOT_SERVING", "true")])
        .await
        .expect("start not-serving connector");
    let (client, _) = stdio_client(&connector_args(&[
        spec("calculator", &calc),
        spec("idle", &idle),
    ]))
    .await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"calculator_add".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("idle_")), "{names:?}");
}

#[tokio::test]
async fn tools_are_withdrawn_after_the_grace_period() {
    let mut calc = calculator().await;
    let mut args = connector_args(&[spec("calculator", &calc)]);
    args.extend(["--tool-grace".to_owned(), "300ms".to_owned()]);
    let (client, recorder) = stdio_client(&args).await;
    assert!(!tool_names(&client).await.is_empty());

    calc.process.kill().await.expect("kill");
    wait_for_tools(&client, &recorder, "the tools to be withdrawn", |names| {
        names.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_connector_that_arrives_late_is_picked_up() {
    let port = free_port().expect("port");
    let late_url = format!("late=http://127.0.0.1:{port}");
    let mut args = connector_args(&[late_url]);
    args.extend(["--startup-timeout".to_owned(), "500ms".to_owned()]);
    let (client, recorder) = stdio_client(&args).await;
    assert!(
        tool_names(&client).await.is_empty(),
        "nothing to list before it arrives"
    );

    let seen = *recorder.list_changed.borrow();
    let _calc = Connector::start("test-connector", port, &[])
        .await
        .expect("start late connector");
    wait_list_changed(&recorder, seen).await;
    wait_for_tools(&client, &recorder, "late_add", |names| {
        names.iter().any(|n| n == "late_add")
    })
    .await;
    let result = call(&client, "late_add", json!({"a": 1, "b": 2})).await;
    assert_eq!(result.structured_content, Some(json!({"sum": 3})));
}

#[tokio::test]
async fn the_router_stops_cleanly_on_sigterm() {
    let calc = calculator().await;
    let mut router = HttpRouter::start(&[spec("calculator", &calc)], &[])
        .await
        .expect("router");
    let status = router.process.terminate().await.expect("terminate");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_connector_stops_on_sigterm_while_the_router_watches_it() {
    let mut calc = integration_tests::process::Connector::start(
        "test-connector",
        0,
        &[("SHUTDOWN_GRACE", "1")],
    )
    .await
    .expect("start connector");
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;
    assert!(
        !tool_names(&client).await.is_empty(),
        "the router is watching it"
    );
    let status = calc
        .process
        .terminate()
        .await
        .expect("stops despite the open health stream");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn calls_are_spread_over_replicas_and_survive_losing_one() {
    let a = calculator().await;
    let mut b = calculator().await;
    let spec = format!("calculator={},{}", a.url(), b.url());
    let (client, _) = stdio_client(&connector_args(&[spec])).await;

    let mut served_by = std::collections::BTreeSet::new();
    for i in 0..40 {
        let r = call(
            &client,
            "calculator_echo",
            json!({"message": format!("m{i}")}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        let by = r.structured_content.expect("structured")["served_by"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        served_by.insert(by);
    }
    assert_eq!(
        served_by,
        [a.addr.to_string(), b.addr.to_string()]
            .into_iter()
            .collect(),
        "both replicas served calls"
    );

    b.process.kill().await.expect("kill one replica");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut ok_in_a_row = 0;
    while ok_in_a_row < 10 {
        let r = call(&client, "calculator_echo", json!({"message": "after"})).await;
        if is_error(&r) {
            ok_in_a_row = 0;
            assert!(
                tokio::time::Instant::now() < deadline,
                "calls never recovered: {}",
                text(&r)
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        } else {
            ok_in_a_row += 1;
            let by = r.structured_content.expect("structured")["served_by"].clone();
            assert_eq!(
                by,
                json!(a.addr.to_string()),
                "only the live replica answers"
            );
        }
    }
}

#[tokio::test]
async fn a_connector_named_by_host_name_is_resolved() {
    let calc = calculator().await;
    let spec = format!("calculator=http://localhost:{}", calc.addr.port());
    let (client, _) = stdio_client(&connector_args(&[spec])).await;
    let r = call(&client, "calculator_add", json!({"a": 1, "b": 1})).await;
    assert_eq!(
        r.structured_content,
        Some(json!({"sum": 2})),
        "{}",
        text(&r)
    );
}
