//! What the companion's integration tests share: the timeout every async test runs under.
//! (The service crate's `tests/common` also spawns its API; this crate has no server, so only
//! the timeout is here.)

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// How long an ordinary async test may take before it fails instead of hanging.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `test`, failing it when it takes longer than [`TEST_TIMEOUT`]: a hung test must fail,
/// not stall CI.
pub async fn within_a_minute<T>(test: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TEST_TIMEOUT, test).await {
        Ok(value) => value,
        Err(_) => panic!("the test took longer than {TEST_TIMEOUT:?}"),
    }
}
