//! Authorization: which principal may list and call which tool.
//!
//! A policy (`--policy FILE`, `SWITCHBOARD_POLICY`) is a TOML list of allow
//! rules; once one is given everything else is denied:
//!
//! ```toml
//! [[allow]]
//! tools = ["code_analysis_*"]        # globs (`*`, `?`) over the router's names: tools, prompts, resources
//! scopes = ["code:read"]             # every one must be granted (`scope` or `scp` claim)
//! [[allow]]
//! tools = ["database_*"]
//! scopes = ["db:read"]
//! when = '"analysts" in jwt.groups'  # optional CEL: jwt (all claims), tool.name, tool.connector, args
//! ```
//!
//! A call is allowed when some rule matches it completely: a tool glob, every
//! scope, and `when`. A `when` that fails (a missing claim, a type mismatch)
//! counts as false and is logged once per rule. A policy that does not parse or
//! check (see [`condition`]) is refused at start-up naming the rule and the
//! reason, never at call time.
//!
//! [`Policy::decide`] answers a call: [`Decision::Allow`],
//! [`Decision::InsufficientScope`] (a rule would allow it with more scopes:
//! answer 403 `insufficient_scope` with those scopes so the client can step
//! up), or [`Decision::Hidden`] (no rule can: answer exactly as for an unknown
//! tool). [`Policy::visible`] answers a listing: a tool is listed when some
//! rule's glob and `when` hold for the principal, scopes aside. A listing has
//! no arguments: of a `when` that reads `args`, only the top-level `&&`
//! operands that do not are evaluated (`args.limit < 100 && "analysts" in
//! jwt.groups` lists the tool to analysts only); under `||` nothing can be
//! split off, so such a rule counts as holding for the listing. Without a policy ([`Policy::allow_all`]) every valid token may
//! use every tool. The local stdio user is trusted and always allowed.
//!
//! [`check`] and [`explain`] are the `switchboard policy check|explain` commands.
//!
//! Bounds: the file is at most [`MAX_POLICY_BYTES`], at most [`MAX_RULES`] rules,
//! [`MAX_PATTERNS`] globs per rule of at most [`MAX_PATTERN_CHARS`] characters,
//! `when` at most [`condition::MAX_WHEN_BYTES`] bytes nested at most
//! [`condition::MAX_WHEN_DEPTH`] deep.

pub mod condition;
mod explain;
pub mod glob;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use cel::{Context, Env};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::{Principal, PrincipalKind};
use condition::{Condition, Outcome};

pub use explain::{check, explain};

/// Largest policy file read, in bytes.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;
/// What a remembered decision is about: a token's SHA-256, a tool, its connector.
type DecisionKey = ([u8; 32], String, String);

/// Most decisions a policy remembers (see [`Policy::decide`]).
pub const MAX_REMEMBERED_DECISIONS: u64 = 16 * 1024;
/// Longest tool and connector names, together, of a remembered decision.
pub const MAX_REMEMBERED_NAME_BYTES: usize = 512;
/// Longest a decision is remembered.
pub const REMEMBER_DECISIONS_FOR: std::time::Duration = std::time::Duration::from_secs(300);
/// Most rules in a policy.
pub const MAX_RULES: usize = 1000;
/// Most globs in one rule's `tools`.
pub const MAX_PATTERNS: usize = 256;
/// Longest glob, in characters.
pub const MAX_PATTERN_CHARS: usize = 256;

/// The policy file as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Globs over router tool names whose results do not depend on who
    /// calls: identical read-only calls of such a tool that are in flight at
    /// once share one connector call across principals (otherwise only a
    /// principal's own identical calls do).
    #[serde(default)]
    pub shared_results: Vec<String>,
    /// The allow rules, in order.
    #[serde(default)]
    pub allow: Vec<AllowRule>,
}

/// One `[[allow]]` rule as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// Globs over router names.
    pub tools: Vec<String>,
    /// Scopes that must all be granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Optional CEL condition.
    #[serde(default)]
    pub when: Option<String>,
}

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("cannot read the policy {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is larger than [`MAX_POLICY_BYTES`].
    #[error("the policy {path} is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The bound.
        limit: u64,
    },
    /// Not valid TOML or not the policy's shape.
    #[error("the policy is not valid: {0}")]
    Syntax(String),
    /// A `shared_results` glob that cannot be used.
    #[error("policy shared_results: {0}")]
    SharedResults(String),
    /// More than [`MAX_RULES`] rules.
    #[error("the policy has more than {limit} rules")]
    TooManyRules {
        /// The bound.
        limit: usize,
    },
    /// A rule that cannot be used.
    #[error("policy rule {rule} ([[allow]] number {rule}): {reason}")]
    Rule {
        /// 1-based position of the rule.
        rule: usize,
        /// Why.
        reason: String,
    },
}

/// What a tool is, for the policy: its router name and its connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolRef<'a> {
    /// The router's name for it (`database_query`, a prompt or resource name).
    pub name: &'a str,
    /// The connector serving it.
    pub connector: &'a str,
}

/// The answer for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, by rule number `rule` (1-based), or `None` without a policy or for the local user.
    Allow {
        /// The rule that allows it.
        rule: Option<usize>,
    },
    /// A rule would allow it with these scopes (all of that rule's scopes): answer 403.
    InsufficientScope(Vec<String>),
    /// No rule can allow it: answer as for an unknown tool.
    Hidden,
}

/// A checked rule.
#[derive(Debug)]
struct Rule {
    number: usize,
    tools: Vec<String>,
    scopes: Vec<String>,
    when: Option<Condition>,
}

impl Rule {
    fn matches_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|p| glob::matches(p, name))
    }
}

/// A checked policy.
pub struct Policy {
    /// `None`: no policy given, everything allowed.
    rules: Option<Vec<Rule>>,
    env: Arc<Env>,
    /// See [`PolicyConfig::shared_results`].
    shared_results: Vec<String>,
    /// Decisions remembered per token, tool and connector while no condition
    /// reads `args` (a decision then depends on nothing else): at most
    /// [`MAX_REMEMBERED_DECISIONS`], each for at most [`REMEMBER_DECISIONS_FOR`].
    decisions: Option<moka::sync::Cache<DecisionKey, Decision>>,
    /// The variables some rule's `when` reads; only those are bound for a
    /// decision (turning the claims and arguments into CEL values is most of
    /// a decision's cost).
    bound: Bound,
}

/// Which of the variables `jwt`, `tool` and `args` a policy's conditions read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bound {
    jwt: bool,
    tool: bool,
    args: bool,
}

impl Bound {
    fn of(rules: &[Rule]) -> Self {
        let reads = |name: &str| {
            rules
                .iter()
                .filter_map(|r| r.when.as_ref())
                .any(|w| w.reads(name))
        };
        Self {
            jwt: reads("jwt"),
            tool: reads("tool"),
            args: reads("args"),
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// A glob as a policy may use it: 1 to [`MAX_PATTERN_CHARS`] characters, no
/// control characters.
fn check_glob(pattern: &str) -> Result<(), String> {
    if pattern.is_empty()
        || pattern.chars().count() > MAX_PATTERN_CHARS
        || pattern.chars().any(char::is_control)
    {
        return Err(format!(
            "the glob {pattern:?} must be 1 to {MAX_PATTERN_CHARS} characters without control characters"
        ));
    }
    Ok(())
}

/// A scope token as RFC 6749 §3.3 allows (`%x21 / %x23-5B / %x5D-7E`).
fn valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

impl Policy {
    /// No policy: any authenticated principal may use every tool.
    pub fn allow_all() -> Self {
        Self {
            rules: None,
            env: condition::environment(),
            shared_results: Vec::new(),
            decisions: None,
            bound: Bound::default(),
        }
    }

    /// Reads and checks the policy file at `path` (at most [`MAX_POLICY_BYTES`]).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        use std::io::Read as _;
        let shown = path.display().to_string();
        let read_err = |e: std::io::Error| PolicyError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_POLICY_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: shown,
                limit: MAX_POLICY_BYTES,
            });
        }
        Self::from_toml(&text)
    }

    /// Parses and checks a policy from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: "(text)".into(),
                limit: MAX_POLICY_BYTES,
            });
        }
        let config: PolicyConfig =
            toml::from_str(text).map_err(|e| PolicyError::Syntax(e.message().to_owned()))?;
        Self::from_config(&config)
    }

    /// Checks a parsed policy.
    pub fn from_config(config: &PolicyConfig) -> Result<Self, PolicyError> {
        if config.allow.len() > MAX_RULES {
            return Err(PolicyError::TooManyRules { limit: MAX_RULES });
        }
        let env = condition::environment();
        let mut rules = Vec::with_capacity(config.allow.len());
        for (i, raw) in config.allow.iter().enumerate() {
            let number = i + 1;
            let fail = |reason: String| PolicyError::Rule {
                rule: number,
                reason,
            };
            if raw.tools.is_empty() {
                return Err(fail("`tools` is empty, so the rule allows nothing".into()));
            }
            if raw.tools.len() > MAX_PATTERNS {
                return Err(fail(format!("`tools` has more than {MAX_PATTERNS} globs")));
            }
            for pattern in &raw.tools {
                check_glob(pattern).map_err(fail)?;
            }
            for scope in &raw.scopes {
                if !valid_scope(scope) {
                    return Err(fail(format!(
                        "the scope {scope:?} is not a valid OAuth scope (printable ASCII without spaces, `\"` or `\\`)"
                    )));
                }
            }
            let when = match &raw.when {
                Some(source) => Some(Condition::compile(&env, source).map_err(fail)?),
                None => None,
            };
            let scopes: BTreeSet<String> = raw.scopes.iter().cloned().collect();
            rules.push(Rule {
                number,
                tools: raw.tools.clone(),
                scopes: scopes.into_iter().collect(),
                when,
            });
        }
        if config.shared_results.len() > MAX_PATTERNS {
            return Err(PolicyError::SharedResults(format!(
                "has more than {MAX_PATTERNS} globs"
            )));
        }
        for pattern in &config.shared_results {
            check_glob(pattern).map_err(PolicyError::SharedResults)?;
        }
        let bound = Bound::of(&rules);
        Ok(Self {
            shared_results: config.shared_results.clone(),
            decisions: (!bound.args).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(MAX_REMEMBERED_DECISIONS)
                    .time_to_live(REMEMBER_DECISIONS_FOR)
                    .build()
            }),
            bound,
            rules: Some(rules),
            env,
        })
    }

    /// Whether `tool`'s results are the same whoever calls (`shared_results`),
    /// so identical calls of different principals may share one connector call.
    pub fn results_shared(&self, tool: &str) -> bool {
        self.shared_results.iter().any(|p| glob::matches(p, tool))
    }

    /// Whether a policy was given (else everything is allowed).
    pub fn is_enforcing(&self) -> bool {
        self.rules.is_some()
    }

    /// Whether some condition reads `args` (else a decision never looks at a
    /// call's arguments).
    pub fn reads_args(&self) -> bool {
        self.bound.args
    }

    /// How many rules it has.
    pub fn len(&self) -> usize {
        self.rules.as_ref().map_or(0, Vec::len)
    }

    /// Whether it has no rules (a policy without rules denies everything).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every scope some rule asks for, sorted (RFC 9728 `scopes_supported`).
    pub fn scopes_supported(&self) -> Vec<String> {
        let all: BTreeSet<&String> = self
            .rules
            .iter()
            .flatten()
            .flat_map(|r| r.scopes.iter())
            .collect();
        all.into_iter().cloned().collect()
    }

    /// The CEL variables for one principal, tool and arguments.
    fn context(
        &self,
        principal: &Principal,
        tool: &ToolRef<'_>,
        args: &Map<String, Value>,
    ) -> Context<'static, 'static> {
        let mut context = Context::with_env(Arc::clone(&self.env));
        let to_cel = |v: &Value| cel::to_value(v).unwrap_or(cel::Value::Null);
        if self.bound.jwt {
            let jwt = cel::to_value(&principal.claims).unwrap_or(cel::Value::Null);
            context.add_variable_from_value("jwt", jwt);
        }
        if self.bound.tool {
            context.add_variable_from_value(
                "tool",
                to_cel(&serde_json::json!({"name": tool.name, "connector": tool.connector})),
            );
        }
        if self.bound.args {
            context
                .add_variable_from_value("args", cel::to_value(args).unwrap_or(cel::Value::Null));
        }
        context
    }

    /// Evaluates a rule's `when`, logging its first failure.
    fn holds(rule: &Rule, context: &Context<'_, '_>) -> Outcome {
        let Some(when) = &rule.when else {
            return Outcome::True;
        };
        let outcome = when.evaluate(context);
        Self::log_failure(rule, when, &outcome);
        outcome
    }

    /// Logs a condition's first failure (once per rule).
    fn log_failure(rule: &Rule, when: &Condition, outcome: &Outcome) {
        if let Outcome::Error(reason) = outcome
            && when.first_failure()
        {
            tracing::warn!(rule = rule.number, when = when.source(), %reason, "policy condition failed and counts as false (logged once per rule)");
        }
    }

    /// The decision for `principal` calling `tool` with `args`; remembered
    /// per token when no condition reads `args`.
    pub fn decide(
        &self,
        principal: &Principal,
        tool: &ToolRef<'_>,
        args: &Map<String, Value>,
    ) -> Decision {
        // Only tools of the catalog (they have a connector) with names of a
        // sane length are remembered: a client naming unknown tools, or
        // resources by long URIs, cannot fill the memory with its names.
        let rememberable = !tool.connector.is_empty()
            && tool.name.len() + tool.connector.len() <= MAX_REMEMBERED_NAME_BYTES;
        let (Some(decisions), Some(token), true) = (&self.decisions, principal.token, rememberable)
        else {
            return self.decide_now(principal, tool, args);
        };
        let key = (token, tool.name.to_owned(), tool.connector.to_owned());
        if let Some(decision) = decisions.get(&key) {
            return decision;
        }
        let decision = self.decide_now(principal, tool, args);
        decisions.insert(key, decision.clone());
        decision
    }

    fn decide_now(
        &self,
        principal: &Principal,
        tool: &ToolRef<'_>,
        args: &Map<String, Value>,
    ) -> Decision {
        let Some(rules) = &self.rules else {
            return Decision::Allow { rule: None };
        };
        if principal.kind == PrincipalKind::Local {
            return Decision::Allow { rule: None };
        }
        let mut context = None;
        // The rule needing the fewest extra scopes, for the step-up answer.
        let mut closest: Option<(usize, &Rule)> = None;
        for rule in rules.iter().filter(|r| r.matches_tool(tool.name)) {
            if rule.when.is_some() {
                let context = context.get_or_insert_with(|| self.context(principal, tool, args));
                if Self::holds(rule, context) != Outcome::True {
                    continue;
                }
            }
            let missing = rule
                .scopes
                .iter()
                .filter(|s| !principal.scopes.contains(*s))
                .count();
            if missing == 0 {
                return Decision::Allow {
                    rule: Some(rule.number),
                };
            }
            if closest.is_none_or(|(fewest, _)| missing < fewest) {
                closest = Some((missing, rule));
            }
        }
        match closest {
            Some((_, rule)) => Decision::InsufficientScope(rule.scopes.clone()),
            None => Decision::Hidden,
        }
    }

    /// Whether `tool` is listed for `principal`: some rule could allow it, now
    /// or with more scopes.
    pub fn visible(&self, principal: &Principal, tool: &ToolRef<'_>) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        if principal.kind == PrincipalKind::Local {
            return true;
        }
        let mut context = None;
        rules
            .iter()
            .filter(|r| r.matches_tool(tool.name))
            .any(|rule| match &rule.when {
                None => true,
                Some(when) => {
                    let context =
                        context.get_or_insert_with(|| self.context(principal, tool, &Map::new()));
                    let outcome = when.evaluate_for_listing(context);
                    Self::log_failure(rule, when, &outcome);
                    outcome == Outcome::True
                }
            })
    }
}

#[cfg(test)]
mod tests;
