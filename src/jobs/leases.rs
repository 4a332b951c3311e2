//! Lease-guarded singleton work: `leader_leases` rows with an expiry and a fencing token.

use std::time::Duration;

use chrono::Utc;

use crate::store::{leases, Store, StoreError};

pub struct Lease {
    pub name: &'static str,
    pub holder: String,
    pub ttl: Duration,
}

impl Lease {
    pub fn new(name: &'static str, holder: &str, ttl: Duration) -> Lease {
        Lease {
            name,
            holder: holder.to_string(),
            ttl,
        }
    }

    /// Takes or renews the lease. `Some(fencing_token)` when this instance holds it now.
    pub async fn acquire(&self, store: &Store) -> Result<Option<i64>, StoreError> {
        let name = self.name;
        let holder = self.holder.clone();
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::seconds(30));
        store
            .run(move |c| {
                let now = Utc::now();
                leases::try_acquire(c, name, &holder, now, now + ttl).map_err(StoreError::from)
            })
            .await
    }

    pub async fn release(&self, store: &Store) {
        let name = self.name;
        let holder = self.holder.clone();
        if let Err(e) = store
            .run(move |c| leases::release(c, name, &holder).map_err(StoreError::from))
            .await
        {
            tracing::warn!(lease = name, error = %e, "could not release lease");
        }
    }
}
