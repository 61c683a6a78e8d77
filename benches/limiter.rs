//! Overhead of one rate-limit check, in memory and in Redis: the sliding-window log (`hit`, low limits
//! such as sign-in attempts) and the sliding-window counter (`hit_counter`, per-client rates on the token
//! and introspection endpoints).
//!
//! Run: `cargo bench --bench limiter` (set LATCHKEY_BENCH_REDIS_URL, default redis://127.0.0.1:6379;
//! the Redis part is skipped when it is unreachable). Prints mean and p50/p99 per hit, sequentially and
//! with 32 concurrent callers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::ephemeral::Ephemeral;
use latchkey::ephemeral::memory::MemoryEphemeral;
use latchkey::ephemeral::redis::RedisEphemeral;

const HITS: usize = 20_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

/// Which limiter a run measures.
#[derive(Clone, Copy)]
enum Limiter {
    Log,
    Counter,
}

impl Limiter {
    fn name(self) -> &'static str {
        match self {
            Limiter::Log => "log",
            Limiter::Counter => "counter",
        }
    }

    async fn hit(self, store: &dyn Ephemeral, key: &str) {
        let window = Duration::from_secs(300);
        match self {
            Limiter::Log => store.hit(key, 5, window).await.expect("hit"),
            Limiter::Counter => store.hit_counter(key, 5, window).await.expect("hit"),
        };
    }
}

async fn sequential(name: &str, store: &dyn Ephemeral, limiter: Limiter) {
    let mut samples = Vec::with_capacity(HITS);
    let started = Instant::now();
    for i in 0..HITS {
        // Many keys, as in real traffic; each near its limit so both paths (allow and refuse) run.
        let key = format!("bench:{}", i % 1000);
        let t = Instant::now();
        limiter.hit(store, &key).await;
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    println!(
        "{name:<6} {:<8} sequential: {:>8.2} µs/hit mean, p50 {:>8.2} µs, p99 {:>8.2} µs, {:>9.0} hits/s",
        limiter.name(),
        total.as_secs_f64() * 1e6 / HITS as f64,
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        HITS as f64 / total.as_secs_f64()
    );
}

async fn concurrent(name: &str, store: Arc<dyn Ephemeral>, limiter: Limiter) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..HITS / 32 {
                    let key = format!("bench:c:{}", (t * 1000 + i) % 1000);
                    limiter.hit(store.as_ref(), &key).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let total = started.elapsed();
    println!(
        "{name:<6} {:<8} 32 callers: {:>9.0} hits/s",
        limiter.name(),
        HITS as f64 / total.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let memory: Arc<dyn Ephemeral> = Arc::new(MemoryEphemeral::new());
    for limiter in [Limiter::Log, Limiter::Counter] {
        sequential("memory", memory.as_ref(), limiter).await;
        concurrent("memory", memory.clone(), limiter).await;
    }
    let url = std::env::var("LATCHKEY_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis = RedisEphemeral::new(&url).expect("redis url");
    if redis.ping().await.is_err() {
        println!("redis    skipped: {url} unreachable");
        return;
    }
    let redis: Arc<dyn Ephemeral> = Arc::new(redis);
    for limiter in [Limiter::Log, Limiter::Counter] {
        sequential("redis", redis.as_ref(), limiter).await;
        concurrent("redis", redis.clone(), limiter).await;
    }
}
