//! `leader_leases`: singleton jobs run on exactly one instance at a time.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::leader_leases;
use super::sql_types::DbTime;
use super::DbConnection;

/// Tries to take or renew the lease `name` for `holder` until `expires_at`. Succeeds when the
/// lease is free, expired, or already ours; returns the fencing token, which grows by one every
/// time the lease changes hands, so a stale holder's late writes can be told apart.
pub fn try_acquire(
    conn: &mut DbConnection,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<Option<i64>> {
    let current = leader_leases::table
        .filter(leader_leases::name.eq(name))
        .select((
            leader_leases::holder,
            leader_leases::fencing_token,
            leader_leases::expires_at,
        ))
        .first::<(String, i64, DbTime)>(conn)
        .optional()?;
    match current {
        None => {
            let inserted = diesel::insert_into(leader_leases::table)
                .values((
                    leader_leases::name.eq(name),
                    leader_leases::holder.eq(holder),
                    leader_leases::fencing_token.eq(1_i64),
                    leader_leases::expires_at.eq(DbTime(expires_at)),
                ))
                .execute(conn);
            match inserted {
                Ok(_) => Ok(Some(1)),
                // Another instance inserted first: it holds the lease.
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => Ok(None),
                Err(e) => Err(e),
            }
        }
        Some((current_holder, token, current_expiry)) => {
            let ours = current_holder == holder;
            if !ours && current_expiry.0 > now {
                return Ok(None);
            }
            let next_token = if ours { token } else { token + 1 };
            // Compare-and-set on (holder, token): two instances racing for an expired lease
            // cannot both win.
            let changed = diesel::update(
                leader_leases::table
                    .filter(leader_leases::name.eq(name))
                    .filter(leader_leases::holder.eq(&current_holder))
                    .filter(leader_leases::fencing_token.eq(token)),
            )
            .set((
                leader_leases::holder.eq(holder),
                leader_leases::fencing_token.eq(next_token),
                leader_leases::expires_at.eq(DbTime(expires_at)),
            ))
            .execute(conn)?;
            Ok((changed == 1).then_some(next_token))
        }
    }
}

/// Gives the lease up (on shutdown), so another instance need not wait for it to expire.
pub fn release(conn: &mut DbConnection, name: &str, holder: &str) -> QueryResult<()> {
    diesel::delete(
        leader_leases::table
            .filter(leader_leases::name.eq(name))
            .filter(leader_leases::holder.eq(holder)),
    )
    .execute(conn)
    .map(|_| ())
}
