//! A client-side rate limit on Kubernetes API requests (GCRA token bucket).
//!
//! kube-rs has no client-side limiter, and a controller that lists thousands of
//! ExternalSecrets at start-up can flood the apiserver. Every request made through the client
//! waits here for a slot: at most `burst` requests at once, refilled at `qps` per second.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tower::{Layer, Service};

/// Shared limiter state.
#[derive(Debug)]
pub struct Limiter {
    interval: Duration,
    burst_window: Duration,
    tat: Mutex<Instant>,
}

impl Limiter {
    /// A limiter allowing `qps` requests per second with bursts of `burst`.
    pub fn new(qps: f64, burst: u32) -> Arc<Self> {
        let interval = Duration::from_secs_f64(1.0 / qps.max(0.001));
        Arc::new(Limiter {
            interval,
            burst_window: interval * burst.max(1),
            tat: Mutex::new(Instant::now()),
        })
    }

    /// Waits for a slot.
    pub async fn acquire(&self) {
        let allow_at = {
            let mut tat = self
                .tat
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let start = (*tat).max(now);
            *tat = start + self.interval;
            (*tat).checked_sub(self.burst_window).unwrap_or(now)
        };
        if allow_at > Instant::now() {
            tokio::time::sleep_until(allow_at).await;
        }
    }
}

/// Tower layer applying a [`Limiter`].
#[derive(Clone)]
pub struct RateLimitLayer(pub Arc<Limiter>);

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limiter: self.0.clone(),
        }
    }
}

/// Service wrapper produced by [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R> + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    /// The inner future is lazy (nothing is sent until it is polled), so waiting for the
    /// limiter before polling it delays the request itself.
    fn call(&mut self, req: R) -> Self::Future {
        let limiter = self.limiter.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            limiter.acquire().await;
            fut.await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_paces() {
        let l = Limiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(5),
            "burst is immediate"
        );
        for _ in 0..10 {
            l.acquire().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took <= Duration::from_millis(1100),
            "{took:?}"
        );
    }
}
