//! tools/call: transcoding, argument errors, connector errors, streaming, deadlines.

use std::sync::atomic::Ordering;

use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn calls_return_structured_results() {
    let calc = calculator().await;
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;

    let sum = call(&client, "calculator_add", json!({"a": 2, "b": 3.5})).await;
    assert!(!is_error(&sum), "{}", text(&sum));
    assert_eq!(sum.structured_content, Some(json!({"sum": 5.5})));
    assert_eq!(
        text(&sum),
        r#"{"sum":5.5}"#,
        "the text block carries the same JSON"
    );

    let div = call(
        &client,
        "calculator_divide",
        json!({"dividend": "-7", "divisor": 2}),
    )
    .await;
    assert_eq!(
        div.structured_content,
        Some(json!({"quotient": -3, "remainder": -1})),
        "64-bit integers accepted as strings, returned as numbers"
    );

    let echo = call(
        &client,
        "calculator_echo",
        json!({
            "message": "hi",
            "repeat": 2,
            "volume": "loud",
            "tags": ["a", "b"],
            "user_id": 42,
            "meta": {"labels": {"team": "core"}, "written_at": "2024-05-01T12:00:00Z"}
        }),
    )
    .await;
    assert!(!is_error(&echo), "{}", text(&echo));
    let out = echo.structured_content.expect("structured content");
    assert_eq!(out["message"], "HI HI", "enum given by its short name");
    assert_eq!(out["tags"], json!(["a", "b"]));
    assert_eq!(out["recipient"], "user #42");
    assert_eq!(out["meta"]["labels"], json!({"team": "core"}));
    assert_eq!(out["meta"]["written_at"], "2024-05-01T12:00:00Z");
}

#[tokio::test]
async fn argument_errors_name_the_field() {
    let calc = calculator().await;
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;

    let cases = [
        (
            json!({"a": 1, "b": 2, "c": 3}),
            "calculator_add",
            r#"unknown argument "c"; expected one of: a, b"#,
        ),
        (
            json!({"a": "one", "b": 2}),
            "calculator_add",
            r#"field "a": expected a number, got "one""#,
        ),
        (
            json!({"a": 1}),
            "calculator_add",
            r#"missing required argument "b""#,
        ),
        (
            json!({"message": "x", "repeat": 1.5}),
            "calculator_echo",
            r#"field "repeat": expected an integer, got 1.5"#,
        ),
        (
            json!({"message": "x", "volume": "whisper"}),
            "calculator_echo",
            r#"field "volume": expected one of VOLUME_UNSPECIFIED, VOLUME_NORMAL, VOLUME_LOUD, got "whisper""#,
        ),
        (
            json!({"message": "x", "tags": ["a", 2]}),
            "calculator_echo",
            r#"field "tags[1]": expected a string, got 2"#,
        ),
        (
            json!({"message": "x", "meta": {"labels": {"k": 1}}}),
            "calculator_echo",
            r#"field "meta.labels[\"k\"]": expected a string, got 1"#,
        ),
        (
            json!({"message": "x", "meta": {"written_at": "yesterday"}}),
            "calculator_echo",
            r#"field "meta.written_at": expected an RFC 3339 timestamp"#,
        ),
        (
            json!({"message": "x", "user": "ann", "user_id": 1}),
            "calculator_echo",
            r#"arguments "user" and "user_id" exclude each other"#,
        ),
    ];
    for (arguments, tool, expected) in cases {
        let result = call(&client, tool, arguments.clone()).await;
        assert!(is_error(&result), "{arguments} should be refused");
        let message = text(&result);
        assert!(
            message.contains(expected),
            "for {arguments}: {message:?} should contain {expected:?}"
        );
        assert!(
            message.starts_with(tool),
            "the error names the tool: {message}"
        );
    }
}

#[tokio::test]
async fn unknown_tools_are_protocol_errors() {
    let calc = calculator().await;
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;
    let err = client
        .call_tool(CallToolRequestParams::new("calculator_nope"))
        .await
        .expect_err("unknown tool");
    let message = err.to_string();
    assert!(
        message.contains("unknown tool \"calculator_nope\""),
        "{message}"
    );
}

#[tokio::test]
async fn connector_errors_become_readable_tool_errors() {
    let calc = calculator().await;
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;

    let result = call(
        &client,
        "calculator_divide",
        json!({"dividend": 1, "divisor": 0}),
    )
    .await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(
        message.contains("calculator_divide failed: divisor must not be zero"),
        "{message}"
    );
    assert!(
        message.contains("connector calculator, gRPC status InvalidArgument"),
        "{message}"
    );
    assert!(message.contains("correct them and call again"), "{message}");

    let result = call(
        &client,
        "calculator_fail",
        json!({"code": "NOT_FOUND", "message": "no such thing"}),
    )
    .await;
    let message = text(&result);
    assert!(is_error(&result));
    assert!(
        message.contains("no such thing") && message.contains("NotFound"),
        "{message}"
    );

    let result = call(
        &client,
        "calculator_fail",
        json!({"code": "PERMISSION_DENIED", "message": "read-only mode"}),
    )
    .await;
    assert!(
        text(&result).contains("retrying will not help"),
        "{}",
        text(&result)
    );
}

#[tokio::test]
async fn streaming_methods_report_progress_and_collect_messages() {
    let calc = calculator().await;
    let (client, recorder) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;

    let token = ProgressToken(NumberOrString::String("count-1".into()));
    let mut params =
        CallToolRequestParams::new("calculator_count").with_arguments(args(json!({"to": 4})));
    params.meta = Some(RequestMetaObject::with_progress_token(token));
    let result = client.call_tool(params).await.expect("tools/call");
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(
        result.structured_content,
        Some(json!({"messages": [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]}))
    );
    // Progress notifications are sent before the result, in order.
    let progress = recorder.progress.lock().await.clone();
    assert_eq!(recorder.progress_count.load(Ordering::SeqCst), 4);
    // (The client library assigns the request's progress token itself.)
    let tokens: Vec<_> = progress.iter().map(|p| p.progress_token.clone()).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] == w[1]),
        "one token per call: {tokens:?}"
    );
    let seen: Vec<(f64, String)> = progress
        .iter()
        .map(|p| (p.progress, p.message.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        seen,
        [
            (1.0, r#"{"n":1}"#.to_owned()),
            (2.0, r#"{"n":2}"#.to_owned()),
            (3.0, r#"{"n":3}"#.to_owned()),
            (4.0, r#"{"n":4}"#.to_owned()),
        ]
    );

    let bad = call(&client, "calculator_count", json!({"to": 0})).await;
    assert!(is_error(&bad));
    assert!(
        text(&bad).contains("to must be between 1 and 1000"),
        "{}",
        text(&bad)
    );
}

#[tokio::test]
async fn calls_past_the_connector_deadline_fail_with_a_clear_error() {
    let calc = calculator().await;
    let mut args = connector_args(&[spec("calculator", &calc)]);
    args.extend(["--call-timeout".to_owned(), "300ms".to_owned()]);
    let (client, _) = stdio_client(&args).await;
    let result = call(&client, "calculator_nap", json!({"ms": 20000})).await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(
        message.contains("DeadlineExceeded") || message.contains("Cancelled"),
        "{message}"
    );
    assert!(message.contains("calculator_nap failed"), "{message}");
}

/// How many Sleep calls the test connector is running now.
async fn sleeping(client: &Client) -> u64 {
    let r = call(client, "calculator_echo", json!({"message": "status"})).await;
    r.structured_content.expect("structured")["sleeping_now"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn cancelling_a_tool_call_cancels_the_grpc_call() {
    let calc = calculator().await;
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;
    // Dropping the request future makes the client send notifications/cancelled.
    let long_call = client.call_tool(
        CallToolRequestParams::new("calculator_nap").with_arguments(args(json!({"ms": 60000}))),
    );
    let mut started = false;
    tokio::select! {
        _ = long_call => panic!("a 60 s nap must not finish here"),
        () = async {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            while sleeping(&client).await != 1 {
                assert!(tokio::time::Instant::now() < deadline, "the nap never started");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            started = true;
        } => {}
    }
    assert!(started);

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while sleeping(&client).await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connector kept sleeping after the MCP request was cancelled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
