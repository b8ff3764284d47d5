//! tools/list: names, descriptions, schemas and annotations generated from the proto.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn tools_are_listed_with_schemas_from_the_proto() {
    let calc = calculator().await;
    let (client, _) = stdio_client(&connector_args(&[spec("calculator", &calc)])).await;

    let names = tool_names(&client).await;
    assert_eq!(
        names,
        [
            "calculator_add",
            "calculator_count",
            "calculator_divide",
            "calculator_echo",
            "calculator_fail",
            "calculator_nap",
        ],
        "one tool per method, sorted, with the name option applied (Sleep → nap)"
    );

    let add = find_tool(&client, "calculator_add").await;
    assert_eq!(
        add.description.as_deref(),
        Some("Adds two numbers and returns their sum.")
    );
    assert_eq!(add.title.as_deref(), Some("Add two numbers"));
    let schema = serde_json::Value::Object((*add.input_schema).clone());
    assert_eq!(schema["properties"]["a"]["type"], "number");
    assert_eq!(
        schema["properties"]["a"]["description"],
        "The first operand."
    );
    assert_eq!(schema["required"], json!(["a", "b"]));
    assert_eq!(schema["additionalProperties"], false);
    let output = serde_json::Value::Object((*add.output_schema.expect("output schema")).clone());
    assert_eq!(output["properties"]["sum"]["type"], "number");
    let ann = add.annotations.expect("annotations");
    assert_eq!(ann.read_only_hint, Some(true));
    assert_eq!(ann.destructive_hint, Some(false));

    let echo = find_tool(&client, "calculator_echo").await;
    let schema = serde_json::Value::Object((*echo.input_schema).clone());
    assert_eq!(
        schema["required"],
        json!(["message"]),
        "optional, repeated, message, oneof and opted-out fields are not required"
    );
    assert_eq!(
        schema["properties"]["message"]["examples"],
        json!(["hello"])
    );
    assert_eq!(schema["properties"]["tags"]["type"], "array");
    assert_eq!(schema["properties"]["tags"]["items"]["type"], "string");
    assert_eq!(
        schema["properties"]["volume"]["enum"],
        json!(["VOLUME_UNSPECIFIED", "VOLUME_NORMAL", "VOLUME_LOUD"])
    );
    let meta = &schema["properties"]["meta"];
    assert_eq!(meta["properties"]["labels"]["type"], "object");
    assert_eq!(
        meta["properties"]["labels"]["additionalProperties"]["type"],
        "string"
    );
    assert_eq!(meta["properties"]["written_at"]["format"], "date-time");
    assert_eq!(
        meta["properties"]["parent"]["$ref"], "#/$defs/switchboard.testkit.calculator.v1.Meta",
        "recursive messages are referenced, not expanded forever"
    );
    assert!(schema["$defs"]["switchboard.testkit.calculator.v1.Meta"].is_object());
    let user = schema["properties"]["user"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(user.contains("Set at most one of: user, user_id"), "{user}");
    assert_eq!(
        echo.annotations.expect("annotations").idempotent_hint,
        Some(true)
    );

    let fail = find_tool(&client, "calculator_fail").await;
    let ann = fail.annotations.expect("annotations");
    assert_eq!(ann.destructive_hint, Some(true));
    assert_eq!(ann.open_world_hint, Some(true));
    assert_eq!(ann.read_only_hint, Some(false));

    let count = find_tool(&client, "calculator_count").await;
    let output = serde_json::Value::Object((*count.output_schema.expect("output schema")).clone());
    assert_eq!(
        output["properties"]["messages"]["type"], "array",
        "streamed results are collected"
    );
}

#[tokio::test]
async fn a_tool_name_prefix_can_be_configured() {
    let calc = calculator().await;
    let dir = std::env::temp_dir().join(format!("sb-prefix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[[connectors]]\nname = \"calculator\"\nurl = \"{}\"\nprefix = \"calc\"\n",
            calc.url()
        ),
    )
    .unwrap();
    let (client, _) = stdio_client(&["--config".to_owned(), config.display().to_string()]).await;
    let names = tool_names(&client).await;
    assert!(names.contains(&"calc_add".to_owned()), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("calc_")),
        "the prefix replaces the connector's name: {names:?}"
    );
    let result = call(&client, "calc_add", json!({"a": 1, "b": 2})).await;
    assert_eq!(result.structured_content, Some(json!({"sum": 3})));
}
