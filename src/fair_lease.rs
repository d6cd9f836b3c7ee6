//! The fair lock's kind of lease, on three keys of one Cluster slot: the
//! lock's key (the key as given, holding the holder's token: the plain lock
//! format, so a plain lock on the key, from this crate or another library,
//! excludes fair holders and is excluded by them), the queue (`{key}:queue`:
//! waiters' tokens scored by their place in line), and when each place
//! lapses (`{key}:queue-expiry`: the same tokens scored by an instant of
//! the server's clock, `TIME` in every script, as the semaphore's permits
//! are).
//!
//! - Acquire: drop the lapsed places; take the lock if it is free and
//!   nobody live is in line before us (then our place goes); else take the
//!   last place if we had none, keep ours alive for another waiter TTL, and
//!   answer `Queued`, so the engine removes our place if we give up.
//! - Release: delete the lock and tell the first live waiter, on its own
//!   channel (`{key}:turn:` and the SHA-1 of its token, never the token);
//!   a place of ours is removed, and when it was first while the lock is
//!   free, the next waiter is told. Plain waiters on the key hear the
//!   release on its plain channel too.
//! - Extend and inspect: the plain lock's, on the key.
//!
//! Invariants:
//! - Places are handed out in arrival order (one more than the last place
//!   in line), and only the first live place may take a free lock: waiters
//!   are served in the order their first attempts landed.
//! - A place lives one waiter TTL from its waiter's last attempt, and every
//!   attempt renews it; waiters never sleep longer than a third of it
//!   between attempts (`Kind::refresh_every`). A waiter that crashed holds
//!   those behind it back at most one waiter TTL.
//! - A release names one waiter: one publish whatever the queue's length.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{RedisResult, Value};

use crate::error::{Error, Result};
use crate::keys;
use crate::kind::{Announce, Grant, Holder, Kind};
use crate::mutex::MutexLease;
use crate::permit_set::SERVER_NOW_LUA;
use crate::scripts::{LeaseScript, Request, ScriptCall};
use crate::token;
use crate::ttl::{gone_within, millis};

/// How long a waiter's place outlives the waiter unless set: short, since
/// it is what a crashed waiter costs those behind it.
pub const DEFAULT_WAITER_TTL: Duration = Duration::from_secs(3);

/// The shortest waiter TTL: its waiters attempt every third of it.
pub const MIN_WAITER_TTL: Duration = Duration::from_millis(100);

/// The longest waiter TTL: a crashed waiter holds the line back that long.
pub const MAX_WAITER_TTL: Duration = Duration::from_secs(10 * 60);

const PRUNE_LUA: &str = include_str!("lua/fair_prune.lua");

/// Returns how many live places the queue holds. Reads only.
const WAITING_BODY: &str = r#"
return redis.call("ZCOUNT", KEYS[3], "(" .. now, "+inf")
"#;

fn script(body: &str) -> LeaseScript {
    LeaseScript::new(&format!("{SERVER_NOW_LUA}{PRUNE_LUA}{body}"))
}

static ACQUIRE: LazyLock<LeaseScript> =
    LazyLock::new(|| script(include_str!("lua/fair_acquire.lua")));
static RELEASE: LazyLock<LeaseScript> =
    LazyLock::new(|| script(include_str!("lua/fair_release.lua")));
static HOLDER: LazyLock<LeaseScript> =
    LazyLock::new(|| script(include_str!("lua/fair_holder.lua")));
static WAITING: LazyLock<LeaseScript> =
    LazyLock::new(|| LeaseScript::new(&format!("{SERVER_NOW_LUA}{WAITING_BODY}")));

/// Checks a waiter TTL; rounded down to whole milliseconds.
pub(crate) fn check_waiter_ttl(ttl: Duration) -> Result<Duration> {
    if !(MIN_WAITER_TTL..=MAX_WAITER_TTL).contains(&ttl) {
        return Err(Error::invalid(
            "waiter_ttl",
            format!("{ttl:?} is outside {MIN_WAITER_TTL:?} ..= {MAX_WAITER_TTL:?}"),
        ));
    }
    Ok(Duration::from_millis(millis(ttl)))
}

/// The names of one fair lock's companion keys and channels.
#[derive(Debug)]
struct Names {
    queue: Arc<str>,
    expiry: Arc<str>,
    /// The start of each waiter's own channel.
    turn: Arc<str>,
}

/// A hold of a fair lock: the key is a plain lock, extended and inspected
/// as the mutex's.
#[derive(Clone, Debug)]
pub(crate) struct FairLease {
    mutex: MutexLease,
    names: Arc<Names>,
    waiter_ttl: Duration,
    /// Whether a busy answer takes a place in line (not for a
    /// `try_acquire`, which would give it up at once).
    queues: bool,
}

impl FairLease {
    /// The fair lock on `key` (checked by the caller), its waiters' places
    /// living `waiter_ttl` (checked); refused for a key whose companion keys
    /// could not share its Cluster slot.
    pub(crate) fn new(key: &str, waiter_ttl: Duration) -> Result<FairLease> {
        let names = Names {
            queue: keys::queue_key(key)?.into(),
            expiry: keys::queue_expiry_key(key)?.into(),
            turn: keys::turn_channel_prefix(key)?.into(),
        };
        Ok(FairLease {
            mutex: MutexLease::new(key, None),
            names: Arc::new(names),
            waiter_ttl: check_waiter_ttl(waiter_ttl)?,
            queues: true,
        })
    }

    /// The same lock for one attempt that takes no place in line when busy.
    pub(crate) fn trying(&self) -> FairLease {
        FairLease {
            queues: false,
            ..self.clone()
        }
    }

    pub(crate) fn waiter_ttl(&self) -> Duration {
        self.waiter_ttl
    }

    /// The same lock with another waiter TTL (checked here).
    pub(crate) fn with_waiter_ttl(&self, waiter_ttl: Duration) -> Result<FairLease> {
        Ok(FairLease {
            waiter_ttl: check_waiter_ttl(waiter_ttl)?,
            ..self.clone()
        })
    }

    /// Asks how many live places the queue holds.
    pub(crate) fn waiting(&self) -> Request {
        Request::Script(self.with_keys(&WAITING))
    }

    /// A call of `script` with the lock's three keys.
    fn with_keys(&self, script: &'static LeaseScript) -> ScriptCall {
        script.call(&[&**self.key(), &*self.names.queue, &*self.names.expiry])
    }
}

/// The public name of a waiter: the SHA-1 (hex) of its token, as Lua's
/// `redis.sha1hex` computes it in the release script; `redis::Script`
/// computes the same digest of its text. Channel names can be listed by
/// anyone allowed `PUBSUB CHANNELS`: a token is never one.
fn waiter_id(token: &str) -> String {
    redis::Script::new(token).get_hash().to_owned()
}

impl Kind for FairLease {
    fn kind_name(&self) -> &'static str {
        "fair_lock"
    }

    fn key(&self) -> &Arc<str> {
        self.mutex.key()
    }

    /// The plain lock's channel: plain waiters on the key hear a fair
    /// holder's release there (fair waiters listen on their own).
    fn channel(&self) -> &str {
        self.mutex.channel()
    }

    fn waiter_channel(&self, token: &str) -> Option<String> {
        Some(format!("{}{}", self.names.turn, waiter_id(token)))
    }

    fn refresh_every(&self) -> Option<Duration> {
        Some(self.waiter_ttl / 3)
    }

    fn acquire(&self, token: &str, ttl: Duration) -> Request {
        Request::Script(self.with_keys(&ACQUIRE).arg(token).arg(millis(ttl)).arg(
            match self.queues {
                true => millis(self.waiter_ttl),
                false => 0,
            },
        ))
    }

    fn read_acquire(&self, reply: Value, _token: &str) -> RedisResult<Grant> {
        Ok(match redis::from_redis_value::<i64>(reply)? {
            1 => Grant::Acquired { fence: None },
            2 => Grant::AlreadyOurs { fence: None },
            3 => Grant::Queued,
            _ => Grant::Busy { named: None },
        })
    }

    fn release(&self, token: &str, announce: Announce<'_>) -> ScriptCall {
        let call = self.with_keys(&RELEASE).arg(token);
        match announce.publishes() {
            true => call.arg(&*self.names.turn).arg(self.mutex.channel()),
            false => call,
        }
    }

    fn extend(&self, token: &str, ttl: Duration) -> ScriptCall {
        self.mutex.extend(token, ttl)
    }

    fn holds(&self, token: &str) -> Request {
        self.mutex.holds(token)
    }

    fn read_holds(&self, reply: Value, token: &str) -> RedisResult<bool> {
        self.mutex.read_holds(reply, token)
    }

    /// What keeps a waiter out: the holder, else the first live waiter
    /// (who takes the lock, whose release is announced, or gives up, which
    /// is announced, or lapses, by then).
    fn holder(&self) -> Request {
        Request::Script(self.with_keys(&HOLDER))
    }

    fn read_holder(&self, reply: Value) -> Holder {
        let Ok(parts) = redis::from_redis_value::<Vec<Value>>(reply) else {
            return Holder::Unknown;
        };
        match parts.as_slice() {
            [Value::Int(0)] => Holder::Gone,
            [Value::Int(1), Value::Int(ttl), holder] if *ttl >= 0 => Holder::Held {
                free_in: gone_within(*ttl),
                announces: redis::from_redis_value_ref::<Vec<u8>>(holder)
                    .is_ok_and(|holder| token::has_token_format(&holder)),
            },
            [Value::Int(2), Value::Int(ms)] => Holder::Held {
                free_in: gone_within(*ms),
                announces: true,
            },
            _ => Holder::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Publish;

    #[test]
    fn only_the_release_publishes_and_its_sharded_form_differs_only_there() {
        assert_eq!(
            RELEASE.body(Publish::Plain).replace("PUBLISH", "SPUBLISH"),
            RELEASE.body(Publish::Sharded)
        );
        for quiet in [&ACQUIRE, &HOLDER, &WAITING] {
            assert!(!quiet.body(Publish::Plain).contains("PUBLISH"));
        }
    }

    #[test]
    fn a_waiters_channel_names_a_digest_of_its_token_in_the_keys_slot() {
        let lease = FairLease::new("jobs", DEFAULT_WAITER_TTL).unwrap();
        let token = "0123456789abcdef0123456789abcdef01234567";
        let channel = lease.waiter_channel(token).unwrap();
        assert_eq!(channel, format!("{{jobs}}:turn:{}", waiter_id(token)));
        assert!(!channel.contains(token));
        // SHA-1's own test vector: the digest `redis.sha1hex` gives.
        assert_eq!(waiter_id("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(FairLease::new("a}b", DEFAULT_WAITER_TTL).is_err());
    }

    #[test]
    fn waiter_ttls_are_checked() {
        assert!(check_waiter_ttl(Duration::from_millis(99)).is_err());
        assert!(check_waiter_ttl(MAX_WAITER_TTL + Duration::from_millis(1)).is_err());
        assert_eq!(
            check_waiter_ttl(Duration::from_micros(1_500_900)).unwrap(),
            Duration::from_millis(1_500)
        );
    }
}
