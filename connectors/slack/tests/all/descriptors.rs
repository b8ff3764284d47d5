//! The proto contract as the router reads it: every method, message and field of
//! `slack.proto` is documented (the comments become tool and parameter
//! descriptions), and read tools are marked free of side effects.

use prost::Message as _;
use prost_types::method_options::IdempotencyLevel;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

fn slack_file() -> FileDescriptorProto {
    let set = FileDescriptorSet::decode(switchboard_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    set.file
        .into_iter()
        .find(|f| f.name() == "switchboard/slack/v1/slack.proto")
        .expect("slack.proto is in the descriptor set")
}

/// The leading comment at a source path, trimmed.
fn comment(file: &FileDescriptorProto, path: &[i32]) -> String {
    file.source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == path))
        .and_then(|l| l.leading_comments.clone())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn every_method_message_and_field_is_documented() {
    let file = slack_file();
    let mut undocumented = Vec::new();
    for (s, service) in file.service.iter().enumerate() {
        for (m, method) in service.method.iter().enumerate() {
            // 6 = FileDescriptorProto.service, 2 = ServiceDescriptorProto.method
            if comment(&file, &[6, s as i32, 2, m as i32]).len() < 20 {
                undocumented.push(format!("method {}", method.name()));
            }
        }
    }
    for (i, message) in file.message_type.iter().enumerate() {
        // 4 = FileDescriptorProto.message_type, 2 = DescriptorProto.field
        if comment(&file, &[4, i as i32]).is_empty() {
            undocumented.push(format!("message {}", message.name()));
        }
        for (j, field) in message.field.iter().enumerate() {
            if comment(&file, &[4, i as i32, 2, j as i32]).is_empty() {
                undocumented.push(format!("field {}.{}", message.name(), field.name()));
            }
        }
    }
    assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");
}

#[test]
fn reads_are_side_effect_free_and_writes_are_not() {
    let file = slack_file();
    let service = &file.service[0];
    assert_eq!(service.name(), "Slack");
    let reads = [
        "ListChannels",
        "GetChannelHistory",
        "GetThreadReplies",
        "GetUsers",
        "GetUserProfile",
        "SearchMessages",
    ];
    assert_eq!(service.method.len(), 11);
    for method in &service.method {
        let level = method
            .options
            .as_ref()
            .map(|o| o.idempotency_level())
            .unwrap_or(IdempotencyLevel::IdempotencyUnknown);
        let is_read = reads.contains(&method.name());
        assert_eq!(
            level == IdempotencyLevel::NoSideEffects,
            is_read,
            "{} has {level:?}",
            method.name()
        );
    }
}
