//! The descriptors a connector serves over reflection, adjusted to its configuration.
//!
//! The router builds its tool catalog from these descriptors alone. A connector
//! whose configuration switches its writing methods off (a read-only database,
//! Jira or Slack deployment) marks them `(switchboard.mcp.v1.tool).hidden` in the
//! descriptors it serves, so the agent is offered only tools it may use. The
//! methods stay in the gRPC service (and are refused there by the connector's
//! policy); only the MCP catalog leaves them out.
//!
//! The set is edited as a dynamic message with prost-reflect, so every other
//! option, extension and source comment is kept as it was.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

/// Why a descriptor set could not be adjusted.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// The set does not decode.
    #[error("the descriptor set does not decode: {0}")]
    Decode(String),
    /// A service to adjust is in none of the connector's descriptor sets.
    #[error("service {0} is not in the connector's descriptors")]
    UnknownService(String),
    /// The set lacks a descriptor the edit needs.
    #[error("the descriptor set lacks {0}")]
    Missing(&'static str),
}

/// `google.protobuf.MethodOptions.IdempotencyLevel.NO_SIDE_EFFECTS`.
const NO_SIDE_EFFECTS: i32 = 1;

/// Whether a method changes something: any `idempotency_level` but NO_SIDE_EFFECTS.
pub fn has_side_effects(method: &MethodDescriptor) -> bool {
    !matches!(
        method
            .options()
            .get_field_by_name("idempotency_level")
            .as_deref(),
        Some(Value::EnumNumber(NO_SIDE_EFFECTS))
    )
}

/// The descriptors in an encoded `FileDescriptorSet`.
pub fn decode(set: &[u8]) -> Result<DescriptorPool, DescriptorError> {
    DescriptorPool::decode(set).map_err(|e| DescriptorError::Decode(e.to_string()))
}

/// The full names (`package.Service.Method`) of the methods with side effects of
/// `service`; `None` when `pool` has no such service.
pub fn writing_methods(pool: &DescriptorPool, service: &str) -> Option<Vec<String>> {
    let service = pool.get_service_by_name(service)?;
    Some(
        service
            .methods()
            .filter(has_side_effects)
            .map(|method| method.full_name().to_owned())
            .collect(),
    )
}

/// `set` with `(switchboard.mcp.v1.tool).hidden = true` on every method named in
/// `methods` (full names); `None` when none of them is in `set`.
pub fn hide_methods(set: &[u8], methods: &[String]) -> Result<Option<Vec<u8>>, DescriptorError> {
    let pool = decode(set)?;
    let targets: Vec<MethodDescriptor> = methods
        .iter()
        .filter_map(|name| {
            let (service, method) = name.rsplit_once('.')?;
            pool.get_service_by_name(service)?
                .methods()
                .find(|m| m.name() == method)
        })
        .collect();
    if targets.is_empty() {
        return Ok(None);
    }
    let set_type = pool
        .get_message_by_name("google.protobuf.FileDescriptorSet")
        .ok_or(DescriptorError::Missing("google/protobuf/descriptor.proto"))?;
    let tool = pool
        .get_extension_by_name("switchboard.mcp.v1.tool")
        .ok_or(DescriptorError::Missing("switchboard/mcp/v1/options.proto"))?;
    let mut message = DynamicMessage::decode(set_type, set)
        .map_err(|e| DescriptorError::Decode(e.to_string()))?;

    for target in &targets {
        let file_name = target.parent_file().name().to_owned();
        let service_name = target.parent_service().name().to_owned();
        let options = child(&mut message, "file", "name", &file_name)
            .and_then(|file| child(file, "service", "name", &service_name))
            .and_then(|service| child(service, "method", "name", target.name()))
            .and_then(|method| method.get_field_by_name_mut("options"))
            .and_then(Value::as_message_mut)
            .ok_or(DescriptorError::Missing("a method named by the pool"))?;
        let mut tool_options = options
            .get_extension(&tool)
            .as_message()
            .cloned()
            .ok_or(DescriptorError::Missing("the tool option's message type"))?;
        tool_options.set_field_by_name("hidden", Value::Bool(true));
        options.set_extension(&tool, Value::Message(tool_options));
    }
    Ok(Some(message.encode_to_vec()))
}

/// The element of the repeated message field `list` whose string field `key` is `value`.
fn child<'a>(
    message: &'a mut DynamicMessage,
    list: &str,
    key: &str,
    value: &str,
) -> Option<&'a mut DynamicMessage> {
    message
        .get_field_by_name_mut(list)?
        .as_list_mut()?
        .iter_mut()
        .filter_map(Value::as_message_mut)
        .find(|item| {
            item.get_field_by_name(key)
                .as_deref()
                .and_then(Value::as_str)
                == Some(value)
        })
}

/// Adjusted sets already made in this process, by (original set, hidden methods).
/// Reflection needs `'static` bytes; each distinct adjustment is made (and kept)
/// once, however many servers a process starts.
type Adjusted = HashMap<(usize, Vec<String>), Option<&'static [u8]>>;
static ADJUSTED: LazyLock<Mutex<Adjusted>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// [`hide_methods`] for a `'static` set, made once per process and kept.
pub fn hide_methods_static(
    set: &'static [u8],
    methods: &[String],
) -> Result<Option<&'static [u8]>, DescriptorError> {
    let key = (set.as_ptr() as usize, methods.to_vec());
    let mut adjusted = ADJUSTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(done) = adjusted.get(&key) {
        return Ok(*done);
    }
    let made = hide_methods(set, methods)?
        .map(|bytes| -> &'static [u8] { Box::leak(bytes.into_boxed_slice()) });
    adjusted.insert(key, made);
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATABASE: &str = "switchboard.database.v1.Database";

    fn tool_option(pool: &DescriptorPool, method: &str, field: &str) -> Option<Value> {
        let ext = pool.get_extension_by_name("switchboard.mcp.v1.tool")?;
        let (service, name) = method.rsplit_once('.')?;
        let method = pool
            .get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == name)?;
        let options = method.options();
        let tool = options.get_extension(&ext);
        tool.as_message()?
            .get_field_by_name(field)
            .map(|v| v.into_owned())
    }

    #[test]
    fn only_the_writing_methods_of_a_service_are_hidden_and_nothing_else_changes() {
        let set = switchboard_proto::FILE_DESCRIPTOR_SET;
        let pool = decode(set).expect("decode");
        let writes = writing_methods(&pool, DATABASE).expect("the service is in the set");
        assert_eq!(writes, [format!("{DATABASE}.Execute")]);

        let patched = hide_methods(set, &writes)
            .expect("patch")
            .expect("the method is in the set");
        let before = DescriptorPool::decode(set).expect("original");
        let after = DescriptorPool::decode(patched.as_slice()).expect("patched set decodes");

        let execute = format!("{DATABASE}.Execute");
        let query = format!("{DATABASE}.Query");
        assert_eq!(
            tool_option(&after, &execute, "hidden"),
            Some(Value::Bool(true))
        );
        assert_eq!(
            tool_option(&after, &query, "hidden"),
            Some(Value::Bool(false))
        );
        // The method's other tool options and its source comment are kept.
        for field in ["title", "destructive"] {
            assert_eq!(
                tool_option(&after, &execute, field),
                tool_option(&before, &execute, field),
                "{field}"
            );
        }
        let comment = |pool: &DescriptorPool| {
            let service = pool.get_service_by_name(DATABASE).expect("service");
            let method = service
                .methods()
                .find(|m| m.name() == "Execute")
                .expect("method");
            let location = method
                .parent_file()
                .file_descriptor_proto()
                .source_code_info
                .clone()
                .expect("source info kept")
                .location
                .into_iter()
                .find(|l| l.path == method.path())
                .expect("method location");
            location.leading_comments.unwrap_or_default()
        };
        assert!(comment(&after).contains("INSERT"), "{}", comment(&after));
        assert_eq!(comment(&after), comment(&before));
        // Every other file and symbol is still there.
        assert_eq!(after.files().count(), before.files().count());
        assert_eq!(after.all_messages().count(), before.all_messages().count());
    }

    #[test]
    fn a_set_without_the_methods_is_left_alone() {
        let set = switchboard_proto::FILE_DESCRIPTOR_SET;
        assert_eq!(
            hide_methods(set, &["no.such.Service.Method".to_owned()]).expect("decode"),
            None
        );
        let pool = decode(set).expect("decode");
        assert_eq!(writing_methods(&pool, "no.such.Service"), None);
    }

    #[test]
    fn the_static_form_is_made_once() {
        let set = switchboard_proto::FILE_DESCRIPTOR_SET;
        let methods = [format!("{DATABASE}.Execute")];
        let first = hide_methods_static(set, &methods)
            .expect("patch")
            .expect("patched");
        let second = hide_methods_static(set, &methods)
            .expect("patch")
            .expect("patched");
        assert!(std::ptr::eq(first, second));
    }

    #[test]
    fn a_broken_set_is_an_error() {
        assert!(matches!(
            decode(b"\x0a\xff"),
            Err(DescriptorError::Decode(_))
        ));
        assert!(matches!(
            hide_methods(b"\x0a\xff", &[format!("{DATABASE}.Execute")]),
            Err(DescriptorError::Decode(_))
        ));
    }
}
