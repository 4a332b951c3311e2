//! One contract per seam, run against every implementation (the way centrifuge shares its
//! broker tests): the liveness store's in-memory version under paused tokio time, and its
//! Redis version in real time when `REDIS_URL` is set (the PostgreSQL + Redis pass of CI).

use std::time::Duration;

use canopy::liveness::{Expirations, LivenessStore, MemoryLiveness, RedisLiveness};
use tokio::time::{sleep, timeout, Instant};
use uuid::Uuid;

use crate::helpers::redis_url;

/// How late an expiry may be reported: the memory store checks every 100 ms, Redis's active
/// expiry samples ten times a second and then notifies.
const LATE: Duration = Duration::from_secs(3);
/// How long "never reported" is watched for after the last expected report.
const QUIET: Duration = Duration::from_millis(700);

async fn next_expiry(expirations: &mut Expirations) -> Uuid {
    timeout(LATE * 2, expirations.recv())
        .await
        .expect("no expiry reported in time")
        .expect("expirations closed")
}

async fn no_expiry(expirations: &mut Expirations) {
    if let Ok(Some(id)) = timeout(QUIET, expirations.recv()).await {
        panic!("unexpected expiry of {id}");
    }
}

/// A deadline is reported once, no earlier than its TTL and not much later.
async fn reported_once_after_its_ttl<L: LivenessStore>(store: &L, exp: &mut Expirations) {
    let id = Uuid::new_v4();
    let ttl = Duration::from_millis(1500);
    let armed = Instant::now();
    store.arm(id, ttl).await.unwrap();
    assert_eq!(next_expiry(exp).await, id);
    let after = armed.elapsed();
    assert!(
        after >= ttl,
        "reported {after:?} after arming, before its {ttl:?} TTL"
    );
    assert!(after <= ttl + LATE, "reported only {after:?} after arming");
    no_expiry(exp).await;
}

/// Arming again (a heartbeat) replaces the deadline.
async fn rearming_pushes_the_deadline_back<L: LivenessStore>(store: &L, exp: &mut Expirations) {
    let id = Uuid::new_v4();
    let ttl = Duration::from_millis(1000);
    let first = Instant::now();
    store.arm(id, ttl).await.unwrap();
    sleep(Duration::from_millis(600)).await;
    store.arm(id, ttl).await.unwrap();
    assert_eq!(next_expiry(exp).await, id);
    let after = first.elapsed();
    assert!(
        after >= Duration::from_millis(1600),
        "reported {after:?} after the first arm: the second arm did not replace the deadline"
    );
    no_expiry(exp).await;
}

/// A disarmed deadline is never reported; another workspace's still is.
async fn disarmed_is_never_reported<L: LivenessStore>(store: &L, exp: &mut Expirations) {
    let (gone, kept) = (Uuid::new_v4(), Uuid::new_v4());
    let ttl = Duration::from_millis(800);
    store.arm(gone, ttl).await.unwrap();
    store.arm(kept, ttl).await.unwrap();
    store.disarm(gone).await.unwrap();
    assert_eq!(next_expiry(exp).await, kept);
    no_expiry(exp).await;
}

async fn contract<L: LivenessStore>(store: &L, exp: &mut Expirations) {
    reported_once_after_its_ttl(store, exp).await;
    rearming_pushes_the_deadline_back(store, exp).await;
    disarmed_is_never_reported(store, exp).await;
}

#[tokio::test(start_paused = true)]
async fn memory_liveness_keeps_the_contract() {
    let (store, mut expirations) = MemoryLiveness::start();
    contract(store.as_ref(), &mut expirations).await;
}

#[tokio::test]
async fn redis_liveness_keeps_the_contract() {
    let Some(url) = redis_url() else {
        return; // the SQLite pass has no Redis; CI's PostgreSQL + Redis pass runs this
    };
    let prefix = format!("seams-{}:", Uuid::new_v4().simple());
    let (store, mut expirations) = RedisLiveness::connect(&url, &prefix).await.unwrap();
    contract(store.as_ref(), &mut expirations).await;
    store.quit().await;
}
