//! Rate limits on tool calls: the `[[limit]]` rules of the router's config and
//! how they are counted.
//!
//! A rule names the tools it covers (globs over router tool names, default
//! all), whose calls it counts together (`per`: each principal apart, each tool
//! apart, or everything at once), a rate (`"10/s"`, `"300/min"`) and a burst
//! (how many calls may come at once; the rate's count by default). Counting is
//! GCRA (the generic cell rate algorithm): in process with `governor`, or,
//! with `--limits-redis`, in Redis ([`shared`]) so that every replica of the
//! router draws from the same allowance. When Redis cannot be reached the
//! in-process counters take over at once (each replica then allows the full
//! rate), and Redis is used again as soon as it answers.
//!
//! [`RateLimits::check`] is the limit stage's question: may this principal
//! call this tool now, and if not, which rule says no and for how long.

pub mod shared;

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

use crate::policy::glob;

/// Whose calls a rule counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// Each principal has its own allowance, for all the rule's tools together.
    Principal,
    /// Each tool has its own allowance, shared by every principal.
    Tool,
    /// One allowance for all the rule's tools and all principals.
    Global,
}

impl Per {
    /// The word used in the config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Principal => "principal",
            Self::Tool => "tool",
            Self::Global => "global",
        }
    }

    /// The reason label of `switchboard_rate_limit_rejections_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Principal => "limit_per_principal",
            Self::Tool => "limit_per_tool",
            Self::Global => "limit_global",
        }
    }
}

/// A rate: `count` calls per `period`, written `"10/s"`, `"300/min"`,
/// `"1000/h"` or `"5000/day"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per period.
    pub count: NonZeroU32,
    /// The period.
    pub period: Duration,
    /// The unit as written, for messages (`s`, `min`, `h`, `day`).
    unit: &'static str,
}

impl Rate {
    /// Parses `"N/unit"` (units: `s`, `sec`, `second`, `m`, `min`, `minute`,
    /// `h`, `hour`, `d`, `day`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let malformed =
            || format!("{raw:?} is not a rate like \"10/s\", \"300/min\" or \"1000/h\"");
        let (count, unit) = raw.trim().split_once('/').ok_or_else(malformed)?;
        let count: u32 = count.trim().parse().map_err(|_| malformed())?;
        let count = NonZeroU32::new(count)
            .ok_or_else(|| format!("{raw:?}: a rate must allow at least one call"))?;
        let (period, unit) = match unit.trim() {
            "s" | "sec" | "second" => (Duration::from_secs(1), "s"),
            "m" | "min" | "minute" => (Duration::from_secs(60), "min"),
            "h" | "hour" => (Duration::from_secs(3600), "h"),
            "d" | "day" => (Duration::from_secs(86_400), "day"),
            _ => return Err(malformed()),
        };
        let rate = Self {
            count,
            period,
            unit,
        };
        if rate.interval().is_zero() {
            return Err(format!("{raw:?}: more than one call per nanosecond"));
        }
        Ok(rate)
    }

    /// The time one call uses up of the allowance (GCRA's emission interval).
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, self.unit)
    }
}

/// One `[[limit]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    /// Globs over router tool names (`*`, `?`); every tool when `["*"]`.
    pub tools: Vec<String>,
    /// Whose calls are counted together.
    pub per: Per,
    /// The sustained rate.
    pub rate: Rate,
    /// Calls allowed at once after a quiet period.
    pub burst: NonZeroU32,
}

/// A `[[limit]]` table as written in the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLimit {
    #[serde(default)]
    tools: Vec<String>,
    per: Option<Per>,
    rate: String,
    burst: Option<u32>,
}

impl FileLimit {
    /// The rule, or what is wrong with it.
    pub(crate) fn rule(self) -> Result<LimitRule, String> {
        LimitRule::new(
            self.tools,
            self.per.unwrap_or(Per::Principal),
            &self.rate,
            self.burst,
        )
    }
}

impl LimitRule {
    /// A rule over `tools` (all when empty), counting `per`, at `rate`, with
    /// `burst` (the rate's count when `None`).
    pub fn new(
        tools: Vec<String>,
        per: Per,
        rate: &str,
        burst: Option<u32>,
    ) -> Result<Self, String> {
        let rate = Rate::parse(rate).map_err(|e| format!("rate: {e}"))?;
        let burst = match burst {
            None => rate.count,
            Some(b) => NonZeroU32::new(b).ok_or("burst: must be at least 1")?,
        };
        let mut tools: Vec<String> = tools
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if tools.is_empty() {
            tools.push("*".to_owned());
        }
        Ok(Self {
            tools,
            per,
            rate,
            burst,
        })
    }

    /// Whether the rule covers `tool`.
    pub fn covers(&self, tool: &str) -> bool {
        self.tools
            .iter()
            .any(|pattern| glob::matches(pattern, tool))
    }

    /// The GCRA quota in process.
    fn quota(&self) -> Quota {
        Quota::with_period(self.rate.interval())
            .expect("Rate::parse refuses a zero interval")
            .allow_burst(self.burst)
    }

    /// A short description for messages and logs:
    /// `10/s (burst 5) per principal on ["jira_*"]`.
    pub fn describe(&self) -> String {
        format!(
            "{} (burst {}) per {} on {:?}",
            self.rate,
            self.burst,
            self.per.as_str(),
            self.tools
        )
    }
}

/// A call a rule refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Which rule (its position among the `[[limit]]` tables, from 1).
    pub rule: usize,
    /// The rule.
    pub limit: LimitRule,
    /// How long until the call would be allowed.
    pub retry_after: Duration,
}

impl Refused {
    /// Whole seconds to wait, at least one (`Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// A rule with its in-process counters.
struct Counted {
    rule: LimitRule,
    local: DefaultKeyedRateLimiter<String>,
}

/// Checks after which idle in-process counters are dropped.
const PRUNE_EVERY: u64 = 4096;

/// The rules and their counters: in process, and in Redis when configured.
pub struct RateLimits {
    rules: Vec<Counted>,
    clock: DefaultClock,
    shared: Option<shared::SharedStore>,
    checks: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field(
                "rules",
                &self
                    .rules
                    .iter()
                    .map(|c| c.rule.describe())
                    .collect::<Vec<_>>(),
            )
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl RateLimits {
    /// In-process counters for `rules`.
    pub fn new(rules: Vec<LimitRule>) -> Self {
        Self {
            rules: rules
                .into_iter()
                .map(|rule| Counted {
                    local: DefaultKeyedRateLimiter::keyed(rule.quota()),
                    rule,
                })
                .collect(),
            clock: DefaultClock::default(),
            shared: None,
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts in `store` while it answers (in process otherwise).
    pub fn with_shared(mut self, store: shared::SharedStore) -> Self {
        self.shared = Some(store);
        self
    }

    /// Whether there is any rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `principal` may call `tool` now; counts the call when it may.
    /// Never waits on Redis longer than its short timeout.
    pub async fn check(&self, tool: &str, principal: &str) -> Result<(), Refused> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let covering: Vec<(usize, &Counted)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, c)| c.rule.covers(tool))
            .collect();
        if covering.is_empty() {
            return Ok(());
        }
        let key = |rule: &LimitRule| -> String {
            match rule.per {
                Per::Principal => principal.to_owned(),
                Per::Tool => tool.to_owned(),
                Per::Global => String::new(),
            }
        };
        if let Some(store) = &self.shared {
            let cells: Vec<shared::Cell> = covering
                .iter()
                .map(|(i, c)| shared::Cell::new(*i, &c.rule, &key(&c.rule)))
                .collect();
            if let Some(answer) = store.check(&cells).await {
                return answer.map_err(|(position, retry_after)| {
                    let (i, c) = covering[position];
                    Refused {
                        rule: i + 1,
                        limit: c.rule.clone(),
                        retry_after,
                    }
                });
            }
        }
        self.check_locally(&covering, key)
    }

    fn check_locally(
        &self,
        covering: &[(usize, &Counted)],
        key: impl Fn(&LimitRule) -> String,
    ) -> Result<(), Refused> {
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
            // Principals come and go (sessions): forget full allowances.
            for c in &self.rules {
                c.local.retain_recent();
            }
        }
        for (i, c) in covering {
            if let Err(not_until) = c.local.check_key(&key(&c.rule)) {
                return Err(Refused {
                    rule: i + 1,
                    limit: c.rule.clone(),
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_their_units() {
        let r = Rate::parse("10/s").expect("10/s");
        assert_eq!((r.count.get(), r.period), (10, Duration::from_secs(1)));
        assert_eq!(r.interval(), Duration::from_millis(100));
        assert_eq!(r.to_string(), "10/s");
        let r = Rate::parse(" 300 / min ").expect("300/min");
        assert_eq!(r.interval(), Duration::from_millis(200));
        assert_eq!(r.to_string(), "300/min");
        assert_eq!(
            Rate::parse("2/hour").expect("2/hour").interval(),
            Duration::from_secs(1800)
        );
        assert_eq!(
            Rate::parse("1/d").expect("1/d").period,
            Duration::from_secs(86_400)
        );
        for bad in ["10", "10/fortnight", "ten/s", "-1/s", "/s", ""] {
            let e = Rate::parse(bad).expect_err(bad);
            assert!(e.contains("is not a rate like"), "{bad}: {e}");
        }
        assert!(
            Rate::parse("0/s")
                .expect_err("0")
                .contains("at least one call")
        );
    }

    #[test]
    fn rules_default_to_every_tool_and_a_burst_of_the_rate() {
        let rule = LimitRule::new(vec![], Per::Principal, "300/min", None).expect("rule");
        assert_eq!(rule.tools, ["*"]);
        assert_eq!(rule.burst.get(), 300);
        assert!(rule.covers("anything_at_all"));
        let rule = LimitRule::new(vec!["jira_*".into()], Per::Tool, "5/s", Some(2)).expect("rule");
        assert!(rule.covers("jira_create_issue"));
        assert!(!rule.covers("slack_post_message"));
        assert_eq!(rule.describe(), r#"5/s (burst 2) per tool on ["jira_*"]"#);
        let e = LimitRule::new(vec![], Per::Global, "5/s", Some(0)).expect_err("burst 0");
        assert_eq!(e, "burst: must be at least 1");
        let e = LimitRule::new(vec![], Per::Global, "5 per s", None).expect_err("rate");
        assert!(e.starts_with("rate: "), "{e}");
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_principal_gets_its_burst_then_is_refused_with_a_retry_time() {
        let limits = RateLimits::new(vec![
            LimitRule::new(vec!["calc_*".into()], Per::Principal, "1/min", Some(3)).expect("rule"),
        ]);
        block_on(async {
            for _ in 0..3 {
                limits
                    .check("calc_add", "alice")
                    .await
                    .expect("within burst");
            }
            let refused = limits.check("calc_add", "alice").await.expect_err("4th");
            assert_eq!(refused.rule, 1);
            assert!(refused.retry_after > Duration::from_secs(50), "{refused:?}");
            assert!(
                refused.retry_after <= Duration::from_secs(60),
                "{refused:?}"
            );
            assert_eq!(
                refused.retry_after_secs(),
                refused.retry_after.as_secs() + 1
            );
            // Another principal has its own allowance; another tool none at all.
            limits.check("calc_add", "bob").await.expect("bob");
            limits
                .check("db_query", "alice")
                .await
                .expect("not covered");
        });
    }

    #[test]
    fn per_tool_and_global_rules_count_across_principals() {
        let limits = RateLimits::new(vec![
            LimitRule::new(vec!["a_*".into()], Per::Tool, "1/h", Some(1)).expect("tool rule"),
            LimitRule::new(vec!["b_*".into()], Per::Global, "1/h", Some(2)).expect("global"),
        ]);
        block_on(async {
            limits.check("a_one", "alice").await.expect("first a_one");
            let refused = limits.check("a_one", "bob").await.expect_err("a_one again");
            assert_eq!((refused.rule, refused.limit.per), (1, Per::Tool));
            limits.check("a_two", "bob").await.expect("another tool");
            limits.check("b_one", "alice").await.expect("global 1");
            limits.check("b_two", "bob").await.expect("global 2");
            let refused = limits
                .check("b_three", "carol")
                .await
                .expect_err("global 3");
            assert_eq!((refused.rule, refused.limit.per), (2, Per::Global));
        });
    }

    #[test]
    fn the_first_covering_rule_that_refuses_is_named() {
        let limits = RateLimits::new(vec![
            LimitRule::new(vec![], Per::Principal, "100/s", None).expect("wide"),
            LimitRule::new(vec!["jira_*".into()], Per::Principal, "1/min", Some(1))
                .expect("narrow"),
        ]);
        block_on(async {
            limits.check("jira_get_issue", "p").await.expect("first");
            let refused = limits
                .check("jira_get_issue", "p")
                .await
                .expect_err("second");
            assert_eq!(refused.rule, 2);
            limits
                .check("slack_post", "p")
                .await
                .expect("only the wide rule");
        });
    }
}
