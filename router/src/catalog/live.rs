//! The live catalog: what every connector offers now, and its health.
//!
//! [`ToolCatalog`] holds each configured connector's status and tools. The
//! [`crate::upstream`] watchers update it; the front doors read it. Each change
//! of the listed tools bumps a version that sessions watch to send
//! `notifications/tools/list_changed`.
//!
//! Names are data: a tool is found by its whole name in a map from tool name to
//! tool and connector, rebuilt whenever a connector's tools change, never by
//! splitting the name on `_`. The map is filled in configuration order, so when
//! two connectors offer the same name the first configured one has it (and the
//! collision is logged when the tools are set).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::Tool;
use tokio::sync::watch;

use super::{ConnectorTools, Features, ToolEntry};

/// What the router knows of a connector's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorStatus {
    /// Not contacted yet.
    Starting,
    /// SERVING; its tools are current.
    Serving,
    /// Reachable but NOT_SERVING (e.g. not configured, upstream down).
    NotServing,
    /// Cannot be reached; the reason is kept for error messages.
    Unreachable(String),
}

impl std::fmt::Display for ConnectorStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Starting => f.write_str("starting"),
            Self::Serving => f.write_str("serving"),
            Self::NotServing => f.write_str("not serving"),
            Self::Unreachable(reason) => write!(f, "unreachable ({reason})"),
        }
    }
}

#[derive(Debug)]
struct ConnectorState {
    name: String,
    status: ConnectorStatus,
    since: Instant,
    /// Whether the connector has given a definitive answer (for the startup wait).
    settled: bool,
    tools: Vec<Arc<ToolEntry>>,
    /// Names of the connector's methods it marks hidden.
    hidden: Vec<String>,
    features: Features,
}

/// What the catalog holds: the connectors, and the map that finds their tools.
#[derive(Debug)]
struct Listing {
    /// Every configured connector, in configuration order.
    connectors: Vec<ConnectorState>,
    /// Every listed tool by name, with the position of its connector in
    /// `connectors`: the first connector in configuration order that offers a
    /// name has it. Rebuilt by [`Listing::index_tools`] whenever tools change.
    by_name: BTreeMap<String, (usize, Arc<ToolEntry>)>,
}

impl Listing {
    /// The position of `connector` in configuration order.
    fn position(&self, connector: &str) -> Option<usize> {
        self.connectors.iter().position(|c| c.name == connector)
    }

    fn connector_mut(&mut self, connector: &str) -> Option<&mut ConnectorState> {
        self.connectors.iter_mut().find(|c| c.name == connector)
    }

    /// Replaces the tools of the connector at `at`, refreshes the map and warns
    /// about names another connector offers too.
    fn replace_tools(&mut self, at: usize, tools: Vec<Arc<ToolEntry>>) {
        self.connectors[at].tools = tools;
        self.index_tools();
        warn_collisions(&self.connectors, &self.connectors[at].name);
    }

    /// Rebuilds [`Listing::by_name`] from every connector's tools.
    fn index_tools(&mut self) {
        self.by_name.clear();
        for (at, connector) in self.connectors.iter().enumerate() {
            for tool in &connector.tools {
                self.by_name
                    .entry(tool.tool.name.to_string())
                    .or_insert_with(|| (at, Arc::clone(tool)));
            }
        }
    }
}

/// Warns about every tool of `connector` that another connector also offers
/// under the same name: the one configured first is listed and called, the
/// other is unreachable until a prefix tells them apart.
fn warn_collisions(state: &[ConnectorState], connector: &str) {
    let Some(mine) = state.iter().find(|c| c.name == connector) else {
        return;
    };
    for other in state.iter().filter(|c| c.name != connector) {
        for tool in &mine.tools {
            if other.tools.iter().any(|t| t.tool.name == tool.tool.name) {
                let winner = state
                    .iter()
                    .find(|c| c.name == connector || c.name == other.name)
                    .map_or(connector, |c| c.name.as_str());
                tracing::warn!(
                    tool = %tool.tool.name,
                    connectors = %format!("{connector}, {}", other.name),
                    winner,
                    "two connectors offer a tool of the same name: only the one configured first is listed and called; give one of them another prefix"
                );
            }
        }
    }
}

/// A tool looked up for a call, with its connector's current state.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The tool.
    pub entry: Arc<ToolEntry>,
    /// The connector's status.
    pub status: ConnectorStatus,
    /// How long it has had that status.
    pub for_duration: Duration,
}

/// The live catalog shared by the upstream watchers and the MCP sessions.
#[derive(Debug)]
pub struct ToolCatalog {
    state: RwLock<Listing>,
    version: watch::Sender<u64>,
    /// Bumped when a connector's resources or prompts may have changed.
    surface_version: watch::Sender<u64>,
    settled: watch::Sender<usize>,
    ready_deadline: Instant,
}

impl ToolCatalog {
    /// A catalog for these connectors (in listing order); the first `tools/list`
    /// waits until `startup_timeout` from now at most.
    pub fn new(connectors: impl IntoIterator<Item = String>, startup_timeout: Duration) -> Self {
        let now = Instant::now();
        let connectors = connectors
            .into_iter()
            .map(|name| ConnectorState {
                name,
                status: ConnectorStatus::Starting,
                since: now,
                settled: false,
                tools: Vec::new(),
                hidden: Vec::new(),
                features: Features::default(),
            })
            .collect();
        Self {
            state: RwLock::new(Listing {
                connectors,
                by_name: BTreeMap::new(),
            }),
            version: watch::channel(0).0,
            surface_version: watch::channel(0).0,
            settled: watch::channel(0).0,
            ready_deadline: now + startup_timeout,
        }
    }

    fn write<R>(&self, f: impl FnOnce(&mut Listing) -> R) -> R {
        let mut guard = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    fn read<R>(&self, f: impl FnOnce(&Listing) -> R) -> R {
        let guard = self
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&guard)
    }

    /// Records a connector's status. A definitive answer (serving or not serving)
    /// settles it for the startup wait.
    pub fn set_status(&self, connector: &str, status: ConnectorStatus) {
        let newly_settled = self.write(|state| {
            let Some(c) = state.connector_mut(connector) else {
                return false;
            };
            if c.status != status {
                c.status = status.clone();
                c.since = Instant::now();
            }
            let definitive = matches!(
                status,
                ConnectorStatus::Serving | ConnectorStatus::NotServing
            );
            if definitive && !c.settled {
                c.settled = true;
                return true;
            }
            false
        });
        if newly_settled {
            self.settled.send_modify(|n| *n += 1);
        }
    }

    /// Replaces a connector's tools; notifies sessions if the listed tools changed.
    pub fn set_tools(&self, connector: &str, tools: Vec<ToolEntry>) {
        let changed = self.write(|state| {
            let Some(at) = state.position(connector) else {
                return false;
            };
            let current = &state.connectors[at].tools;
            let same = current.len() == tools.len()
                && current.iter().zip(&tools).all(|(a, b)| a.tool == b.tool);
            state.replace_tools(at, tools.into_iter().map(Arc::new).collect());
            !same
        });
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
    }

    /// Publishes what a connector serves now that it is SERVING, in one step: its
    /// tools, its generic services and its status change together, so a client
    /// told to list again (sessions are notified here) can call what it lists.
    pub fn publish(&self, connector: &str, tools: ConnectorTools, features: Features) {
        let newly_settled = self.write(|state| {
            let Some(at) = state.position(connector) else {
                return false;
            };
            let c = &mut state.connectors[at];
            c.hidden = tools.hidden;
            c.features = features;
            if c.status != ConnectorStatus::Serving {
                c.status = ConnectorStatus::Serving;
                c.since = Instant::now();
            }
            let newly = !std::mem::replace(&mut c.settled, true);
            state.replace_tools(at, tools.tools.into_iter().map(Arc::new).collect());
            newly
        });
        // A connector that comes back may have been redeployed: every session
        // lists again, whether or not the tools look the same.
        self.notify_changed();
        if newly_settled {
            self.settled.send_modify(|n| *n += 1);
        }
    }

    /// Tells every session to list the tools again (a connector came back and may
    /// have been redeployed, so clients that cached the list should refresh it).
    pub fn notify_changed(&self) {
        self.version.send_modify(|v| *v += 1);
        self.surface_version.send_modify(|v| *v += 1);
    }

    /// Withdraws a connector's tools, resources and prompts (down for longer
    /// than the grace period).
    pub fn withdraw(&self, connector: &str) {
        self.write(|state| {
            if let Some(c) = state.connector_mut(connector) {
                c.hidden.clear();
            }
        });
        self.set_tools(connector, Vec::new());
        self.set_features(connector, Features::default());
    }

    /// Records which generic services a connector serves; tells sessions to list
    /// resources and prompts again when that changed.
    pub fn set_features(&self, connector: &str, features: Features) {
        let changed = self.write(|state| {
            let Some(c) = state.connector_mut(connector) else {
                return false;
            };
            let changed = c.features != features;
            c.features = features;
            changed
        });
        if changed {
            self.surface_version.send_modify(|v| *v += 1);
        }
    }

    /// Connectors that are serving now and offer `feature`, in configuration order.
    pub fn serving_with(&self, feature: impl Fn(&Features) -> bool) -> Vec<String> {
        self.read(|state| {
            state
                .connectors
                .iter()
                .filter(|c| c.status == ConnectorStatus::Serving && feature(&c.features))
                .map(|c| c.name.clone())
                .collect()
        })
    }

    /// A connector's status and how long it has had it.
    pub fn status(&self, connector: &str) -> Option<(ConnectorStatus, Duration)> {
        self.read(|state| {
            state
                .connectors
                .iter()
                .find(|c| c.name == connector)
                .map(|c| (c.status.clone(), c.since.elapsed()))
        })
    }

    /// Every connector with its status, in configuration order.
    pub fn statuses(&self) -> Vec<(String, ConnectorStatus, usize)> {
        self.read(|state| {
            state
                .connectors
                .iter()
                .map(|c| (c.name.clone(), c.status.clone(), c.tools.len()))
                .collect()
        })
    }

    /// All listed tools, ordered by name. When names collide, the connector
    /// configured first wins (and a warning is logged when the tools are set).
    pub fn tools(&self) -> Vec<Tool> {
        self.read(|state| {
            state
                .by_name
                .values()
                .map(|(_, entry)| entry.tool.clone())
                .collect()
        })
    }

    /// Finds a tool by name in the map of listed tools, with its connector's state.
    pub fn resolve(&self, name: &str) -> Option<Resolved> {
        self.read(|state| {
            let (at, entry) = state.by_name.get(name)?;
            let c = &state.connectors[*at];
            Some(Resolved {
                entry: Arc::clone(entry),
                status: c.status.clone(),
                for_duration: c.since.elapsed(),
            })
        })
    }

    /// The connector that hides a method under the tool name `name`, if one does.
    pub fn hidden_by(&self, name: &str) -> Option<String> {
        self.read(|state| {
            state
                .connectors
                .iter()
                .find(|c| c.hidden.iter().any(|h| h == name))
                .map(|c| c.name.clone())
        })
    }

    /// The tool named `name` as it is listed, if any.
    pub fn tool(&self, name: &str) -> Option<Tool> {
        self.resolve(name).map(|r| r.entry.tool.clone())
    }

    /// Watches the listed tools' version (bumped on every change).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Watches the version of the resources and prompts on offer (bumped when a
    /// connector starts or stops serving them, or comes back and may have changed).
    pub fn subscribe_surface(&self) -> watch::Receiver<u64> {
        self.surface_version.subscribe()
    }

    /// Whether every connector has answered, or the startup wait is over.
    pub fn is_ready(&self) -> bool {
        *self.settled.borrow() >= self.read(|state| state.connectors.len())
            || Instant::now() >= self.ready_deadline
    }

    /// Waits until every connector has answered, at most until the startup deadline.
    pub async fn wait_ready(&self) {
        let total = self.read(|state| state.connectors.len());
        let mut rx = self.settled.subscribe();
        let deadline = tokio::time::Instant::from_std(self.ready_deadline);
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|n| *n >= total)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::build::tests::{connectors_pool, services};
    use crate::catalog::tools_for_connector;
    use crate::config::UpstreamLimits;

    #[test]
    fn a_tool_name_two_connectors_offer_is_logged_and_the_first_configured_wins() {
        let pool = connectors_pool();
        let offered = |name: &str| {
            tools_for_connector(
                name,
                "x",
                &pool,
                &services(&pool),
                &UpstreamLimits::default(),
            )
        };
        let catalog = ToolCatalog::new(["a".to_owned(), "b".to_owned()], Duration::from_secs(1));
        let quiet = crate::testlog::warnings(|| {
            catalog.publish("a", offered("a"), Features::default());
        });
        assert!(!quiet.contains("same name"), "{quiet}");
        let logged = crate::testlog::warnings(|| {
            catalog.publish("b", offered("b"), Features::default());
        });
        assert!(
            logged.contains("two connectors offer a tool of the same name"),
            "{logged}"
        );
        assert!(
            logged.contains("winner=a") || logged.contains("winner=\"a\""),
            "{logged}"
        );
        let name = catalog
            .tools()
            .first()
            .map(|t| t.name.to_string())
            .unwrap_or_default();
        let resolved = catalog.resolve(&name).expect("listed");
        assert_eq!(resolved.entry.connector, "a");
    }

    #[test]
    fn a_name_moves_to_the_next_connector_offering_it_when_the_first_is_withdrawn() {
        let pool = connectors_pool();
        let offered = |name: &str| {
            tools_for_connector(
                name,
                "x",
                &pool,
                &services(&pool),
                &UpstreamLimits::default(),
            )
        };
        let catalog = ToolCatalog::new(["a".to_owned(), "b".to_owned()], Duration::from_secs(1));
        // Published in the other order: configuration order decides, not arrival.
        catalog.publish("b", offered("b"), Features::default());
        catalog.publish("a", offered("a"), Features::default());
        let listed = catalog.tools();
        assert!(!listed.is_empty());
        for tool in &listed {
            let resolved = catalog.resolve(&tool.name).expect("a listed tool resolves");
            assert_eq!(resolved.entry.connector, "a", "{}", tool.name);
            assert_eq!(resolved.status, ConnectorStatus::Serving);
        }
        catalog.set_status("a", ConnectorStatus::NotServing);
        catalog.withdraw("a");
        assert_eq!(
            catalog.tools().len(),
            listed.len(),
            "b offers the same names"
        );
        let name = &listed[0].name;
        assert_eq!(
            catalog.resolve(name).map(|r| r.entry.connector.clone()),
            Some("b".to_owned())
        );
        catalog.withdraw("b");
        assert!(catalog.tools().is_empty());
        assert!(catalog.resolve(name).is_none());
        assert!(catalog.tool(name).is_none());
    }
}
