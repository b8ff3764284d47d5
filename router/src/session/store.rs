//! rmcp's `SessionStore` over Redis: the `initialize` parameters of each
//! session, which a replica replays to take the session over.

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use super::{SharedSessions, StoreError};

#[async_trait::async_trait]
impl SessionStore for SharedSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let mut command = redis::cmd("HGET");
        command.arg(self.key(session_id)).arg("init");
        let raw: Option<String> = self.cmd(command).await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let state = serde_json::from_str(&raw)
            .map_err(|e| StoreError::Malformed(format!("initialize parameters: {e}")))?;
        Ok(Some(state))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        // rmcp stores a session's parameters after its handshake whether or
        // not the handshake succeeded: parameters the router refused (over
        // `max_initialize_bytes`) never reach Redis.
        let limit = self.inner.max_initialize_bytes;
        if crate::mcp::initialize_over(&state.initialize_params, limit) {
            return Err(format!(
                "initialize parameters over max_initialize_bytes ({limit}) not stored"
            )
            .into());
        }
        let raw = serde_json::to_string(state)?;
        let key = self.key(session_id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("init")
            .arg(raw)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.inner.ttl_secs)
            .ignore();
        Ok(self.pipe(pipe).await?)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let mut command = redis::cmd("DEL");
        command.arg(self.key(session_id));
        let _: i64 = self.cmd(command).await?;
        Ok(())
    }
}
