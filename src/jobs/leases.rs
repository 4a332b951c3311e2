//! Lease-guarded singleton work: `leader_leases` rows with an expiry and a fencing token.

use std::time::Duration;

use chrono::Utc;

use crate::store::{leases, Store, StoreError};

/// One job's lease as this instance asks for it. Holding it is only a belief until `ttl`
/// passes: a holder renews it every tick, and another instance takes it over once it expires.
pub struct Lease {
    /// The job's row in `leader_leases` (`"retention"`, `"approvals"`, `"liveness"`).
    pub name: &'static str,
    /// Who asks: this instance's `INSTANCE_ID`.
    pub holder: String,
    /// How long one acquisition lasts; jobs use three times their tick so one late tick does
    /// not hand the job over.
    pub ttl: Duration,
}

impl Lease {
    /// A lease on `name` for `holder`, lasting `ttl` per acquisition; touches no storage.
    pub fn new(name: &'static str, holder: &str, ttl: Duration) -> Lease {
        Lease {
            name,
            holder: holder.to_string(),
            ttl,
        }
    }

    /// Takes or renews the lease. `Some(fencing_token)` when this instance holds it now, `None`
    /// when another live holder has it. Errors: the store's, when the database cannot be
    /// reached or is busy (callers treat that as not holding). A `ttl` too large for chrono
    /// falls back to 30 s.
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

    /// Gives the lease up (on shutdown) so another instance can take over at once instead of
    /// waiting out the TTL. Only this holder's row is cleared; a failure is logged, not returned.
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
