//! A [`Clock`] that only moves when slept on: the adapters' backoff costs no real time in the aws-smithy-mocks
//! tests, and the time it would have waited is observable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mcpfleet::backend::Clock;

#[derive(Default)]
pub struct TestClock(AtomicU64);

#[async_trait]
impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    async fn sleep(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}
