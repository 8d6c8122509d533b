//! The host the simulated cluster runs on.

/// This machine's short host name (up to the first dot), `localhost` when it has none.
pub fn short_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or("").to_string())
        .unwrap_or_else(|| "localhost".into())
}
