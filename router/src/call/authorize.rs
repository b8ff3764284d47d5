//! The authorize stage: who may use what.
//!
//! Each request's principal is the one the HTTP front door put in its
//! extensions (or the local user over stdio and on HTTP without an issuer; with
//! an issuer, a request without one is allowed nothing). Listings keep what
//! [`Policy::visible`] allows; a call, read, get, subscription or completion of
//! something [`Policy::decide`] hides is refused exactly as something unknown
//! is ([`Refusal::Unknown`]), so a caller learns nothing of what exists.

use std::sync::Arc;

use rmcp::ErrorData as McpError;
use serde_json::{Map, Value as Json, json};

use crate::audit::{AuditConfig, AuditEvent, FrontDoor, Outcome as Audited};
use crate::auth::{Authenticator, Principal, principal_metadata};
use crate::policy::{Decision, Policy, ToolRef};

/// Who may do what, shared by every session: the authenticator (HTTP with an
/// issuer), the policy, and the audit settings. The default lets everyone do
/// everything (stdio, and HTTP on localhost without an issuer) and audits
/// without arguments.
#[derive(Debug, Clone)]
pub struct Security {
    /// Set when HTTP clients must present a bearer token: then a request
    /// without an authenticated principal is allowed nothing.
    pub auth: Option<Arc<Authenticator>>,
    /// The authorization policy ([`Policy::allow_all`] without `--policy`).
    pub policy: Arc<Policy>,
    /// The audit trail settings.
    pub audit: Arc<AuditConfig>,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            auth: None,
            policy: Arc::new(Policy::allow_all()),
            audit: Arc::new(AuditConfig::default()),
        }
    }
}

/// The policy's decision on a tool call that the HTTP front door already made
/// for this request (to answer a step-up with 403 before the body reaches the
/// MCP handler), so the authorize stage does not decide it a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The tool the decision is about.
    pub tool: String,
    /// The decision.
    pub decision: Decision,
}

/// Largest forwarded claim for the local user, who has no claims but `sub`.
const LOCAL_CLAIM_BYTES: usize = 1024;

/// What a request names: a tool, a resource (by URI) or a prompt. Each kind
/// has its own "unknown" answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// A tool, by its router name.
    Tool,
    /// A resource, by its client-facing URI.
    Resource,
    /// A prompt, by its router name.
    Prompt,
}

/// Why a request was refused before any connector was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing of that name is offered, or the policy hides it from this
    /// principal (`hidden`): answered alike.
    Unknown {
        /// What kind of thing was named.
        surface: Surface,
        /// The name or URI the request gave.
        name: String,
        /// Whether the policy hid it (audited as a denial).
        hidden: bool,
    },
    /// The tool exists but its connector's configuration turns it off.
    Disabled {
        /// The tool.
        name: String,
        /// The connector hiding it.
        connector: String,
    },
    /// A rule would allow it with more scopes (the MCP step-up).
    InsufficientScope {
        /// The tool, URI or prompt.
        name: String,
        /// The scopes the token lacks.
        scopes: Vec<String>,
    },
}

impl Refusal {
    /// How the refusal is audited.
    pub fn audited(&self) -> Audited {
        match self {
            Self::Unknown { hidden: true, .. } | Self::InsufficientScope { .. } => Audited::Denied,
            Self::Unknown { hidden: false, .. } | Self::Disabled { .. } => Audited::ToolError,
        }
    }
}

impl Refusal {
    /// The reason a policy denial is counted under, if this is one.
    pub fn denial(&self) -> Option<&'static str> {
        match self {
            Self::Unknown { hidden: true, .. } => Some("hidden"),
            Self::InsufficientScope { .. } => Some("insufficient_scope"),
            Self::Unknown { hidden: false, .. } | Self::Disabled { .. } => None,
        }
    }
}

impl From<Refusal> for McpError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unknown { surface, name, .. } => unknown(surface, &name),
            Refusal::Disabled { name, connector } => McpError::invalid_params(
                format!(
                    "tool {name:?} is not offered: connector {connector:?} hides it, as its configuration turns such tools off (e.g. writes on a read-only deployment); call tools/list for the tools available now, or ask the operator"
                ),
                None,
            ),
            // Over HTTP the front door has already answered this with 403;
            // this covers stdio and anything that gets here anyway.
            Refusal::InsufficientScope { name, scopes } => McpError::invalid_request(
                format!("{name} needs a token with the scopes: {}", scopes.join(" ")),
                Some(json!({ "error": "insufficient_scope", "scope": scopes.join(" ") })),
            ),
        }
    }
}

/// The answer to a use of something the router does not offer; something the
/// policy hides from the caller gets exactly this answer too.
pub fn unknown(surface: Surface, name: &str) -> McpError {
    match surface {
        Surface::Tool => McpError::invalid_params(
            format!("unknown tool {name:?}; call tools/list for the tools available now"),
            None,
        ),
        Surface::Resource => McpError::resource_not_found(
            format!(
                "no connector has the resource {name:?}: resources/list and resources/templates/list show the resources available now"
            ),
            Some(json!({ "uri": name })),
        ),
        Surface::Prompt => McpError::invalid_params(
            format!("unknown prompt {name:?}: prompts/list shows the prompts available now"),
            None,
        ),
    }
}

impl Security {
    /// The principal of a request whose HTTP parts rmcp put in `extensions`
    /// (the front door's `require_bearer` put the [`Principal`] there). Without
    /// HTTP parts or an issuer: the local user. `None` when an issuer is set
    /// and the request carries no principal: such a request is allowed nothing.
    pub fn principal(&self, extensions: &rmcp::model::Extensions) -> Option<Principal> {
        let found = extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned();
        self.principal_or_local(found)
    }

    /// The principal a request carries (`found`, from the HTTP front door's
    /// authentication), or the local user when clients are not
    /// authenticated.
    pub fn principal_or_local(&self, found: Option<Principal>) -> Option<Principal> {
        match (found, &self.auth) {
            (Some(principal), _) => Some(principal),
            (None, Some(_)) => None,
            (None, None) => Some(Principal::local()),
        }
    }

    /// The decision the front door made for this request's tool call, if it
    /// made one (see [`Decided`]).
    pub fn decided(&self, extensions: &rmcp::model::Extensions) -> Option<Decided> {
        extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Decided>())
            .cloned()
    }

    /// The gRPC metadata telling a connector who calls.
    pub fn forwarded(&self, principal: &Principal) -> tonic::metadata::MetadataMap {
        match &self.auth {
            Some(auth) => auth.forwarded_metadata(principal),
            None => principal_metadata(principal, &[], LOCAL_CLAIM_BYTES),
        }
    }

    /// The policy's answer for `principal` using `name` of `connector`;
    /// [`Decision::Hidden`] when there is no principal.
    pub fn decide(
        &self,
        principal: Option<&Principal>,
        name: &str,
        connector: &str,
        args: &Map<String, Json>,
    ) -> Decision {
        match principal {
            Some(p) => self.policy.decide(p, &ToolRef { name, connector }, args),
            None => Decision::Hidden,
        }
    }

    /// The stage itself: `Ok` when `principal` may use `name` (of `connector`,
    /// with `args`) now; otherwise the refusal to answer.
    pub fn authorize(
        &self,
        principal: Option<&Principal>,
        surface: Surface,
        name: &str,
        connector: &str,
        args: &Map<String, Json>,
    ) -> Result<(), Refusal> {
        self.authorize_given(None, principal, surface, name, connector, args)
    }

    /// [`Self::authorize`], taking the decision the front door already made
    /// for this request when it is about `name`.
    pub fn authorize_given(
        &self,
        decided: Option<Decided>,
        principal: Option<&Principal>,
        surface: Surface,
        name: &str,
        connector: &str,
        args: &Map<String, Json>,
    ) -> Result<(), Refusal> {
        let decision = match decided {
            Some(d) if d.tool == name => d.decision,
            _ => self.decide(principal, name, connector, args),
        };
        match decision {
            Decision::Allow { .. } => Ok(()),
            Decision::Hidden => Err(Refusal::Unknown {
                surface,
                name: name.to_owned(),
                hidden: true,
            }),
            Decision::InsufficientScope(scopes) => Err(Refusal::InsufficientScope {
                name: name.to_owned(),
                scopes,
            }),
        }
    }

    /// Whether `name` of `connector` is listed for `principal`.
    pub fn visible(&self, principal: Option<&Principal>, name: &str, connector: &str) -> bool {
        principal.is_some_and(|p| self.policy.visible(p, &ToolRef { name, connector }))
    }

    /// Writes one audit line.
    #[allow(clippy::too_many_arguments)]
    pub fn audit(
        &self,
        principal: Option<&Principal>,
        front_door: FrontDoor,
        tool: &str,
        connector: &str,
        outcome: Audited,
        started: std::time::Instant,
        trace_id: Option<&str>,
        arguments: Option<&str>,
    ) {
        AuditEvent {
            principal: principal.map(|p| p.sub.as_str()),
            front_door,
            tool,
            connector,
            outcome,
            duration: started.elapsed(),
            trace_id,
            arguments,
        }
        .emit(&self.audit);
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::ErrorCode;

    use super::*;

    #[test]
    fn the_local_user_may_use_everything_and_no_principal_nothing() {
        let security = Security::default();
        let local = Principal::local();
        let args = Map::new();
        assert_eq!(
            security.authorize(Some(&local), Surface::Tool, "db_query", "db", &args),
            Ok(())
        );
        let refused = security
            .authorize(None, Surface::Resource, "docs+file:///a", "", &args)
            .expect_err("no principal is allowed nothing");
        assert_eq!(refused.audited(), Audited::Denied);
        let error = McpError::from(refused);
        assert_eq!(error.code, ErrorCode::RESOURCE_NOT_FOUND);
        assert_eq!(
            error.message,
            unknown(Surface::Resource, "docs+file:///a").message,
            "hidden is answered exactly as unknown"
        );
        assert!(!security.visible(None, "db_query", "db"));
        assert!(security.visible(Some(&local), "db_query", "db"));
    }

    #[test]
    fn a_decision_the_front_door_made_is_taken_only_for_its_own_tool() {
        let security = Security::default();
        let local = Principal::local();
        let args = Map::new();
        let hidden = Decided {
            tool: "db_query".into(),
            decision: Decision::Hidden,
        };
        // The local user may use everything, so a refusal here can only come
        // from the decision handed in: it is taken, not made again.
        let refused = security
            .authorize_given(
                Some(hidden.clone()),
                Some(&local),
                Surface::Tool,
                "db_query",
                "db",
                &args,
            )
            .expect_err("the given decision counts");
        assert_eq!(refused.audited(), Audited::Denied);
        assert_eq!(
            security.authorize_given(
                Some(hidden),
                Some(&local),
                Surface::Tool,
                "other_tool",
                "db",
                &args
            ),
            Ok(()),
            "a decision about another tool is ignored"
        );
    }

    #[test]
    fn refusals_say_what_to_do() {
        let disabled = McpError::from(Refusal::Disabled {
            name: "jira_create_issue".into(),
            connector: "jira".into(),
        });
        assert!(disabled.message.contains("connector \"jira\" hides it"));
        assert_eq!(
            Refusal::Disabled {
                name: String::new(),
                connector: String::new()
            }
            .audited(),
            Audited::ToolError
        );
        let step_up = McpError::from(Refusal::InsufficientScope {
            name: "db_query".into(),
            scopes: vec!["db:read".into(), "db:admin".into()],
        });
        assert!(step_up.message.contains("db:read db:admin"));
        assert_eq!(
            step_up.data,
            Some(json!({ "error": "insufficient_scope", "scope": "db:read db:admin" }))
        );
        let prompt = unknown(Surface::Prompt, "p");
        assert!(prompt.message.contains("prompts/list"));
        let tool = unknown(Surface::Tool, "t");
        assert!(tool.message.contains("tools/list"));
    }
}
