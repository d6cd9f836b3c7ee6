//! What a kind of lease is (the mutex is the first): the requests of its
//! four steps, and how its replies read as the few answers the engine knows.
//! Everything else (attempts, waiting, guards, renewal, loss, Redlock,
//! Cluster, tracing) is written once, over this trait.
//!
//! A kind's contract:
//! - Every key its requests touch is in the Cluster slot of [`Kind::key`]
//!   (see `keys`), so one script can touch them all.
//! - Its release and extend scripts are token-checked and reply `1` when
//!   they did it, `0` when the token no longer holds the lease; extend never
//!   re-creates a lease that expired.
//! - Its release script announces a release with
//!   `redis.pcall("PUBLISH", <channel>, <message or "">)` when given the
//!   channel, and
//!   only when it deleted the lease, in the same script; the node turns that
//!   into `SPUBLISH` on a Redis Cluster.
//! - Acquire is idempotent per token: a resend of a landed acquire answers
//!   [`Grant::AlreadyOurs`], never a second hold.
//! - A kind that leaves marks while busy ([`Grant::Queued`]) removes them
//!   in its release script, and in its acquire script once the lease is
//!   taken. A mark that lives only as long as its waiter keeps sending
//!   attempts names the longest pause between them
//!   ([`Kind::refresh_every`]).
//! - A kind whose waiters each listen on their own channel
//!   ([`Kind::waiter_channel`]) runs on one node only: a Redlock attempt
//!   can spend a token, and the waiter keeps the channel of its first one.

use std::sync::Arc;
use std::time::Duration;

use redis::{RedisResult, Value};

use crate::scripts::{Request, ScriptCall};
use crate::token::HolderToken;

/// A node's answer to an acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// The lease is ours from this send on; `fence` when the kind fences.
    Acquired { fence: Option<u64> },
    /// The lease was ours already: an earlier send of the same token landed.
    AlreadyOurs { fence: Option<u64> },
    /// Held by others; nothing was changed. `named`: the holder, when the
    /// answer named it; a waiter's inspection then asks only for its TTL
    /// ([`Kind::holder_ttl`]), or not at all when the token is one this
    /// process sent (see `recent`).
    Busy { named: Option<Named> },
    /// Held by others, and this send left a mark of our token that makes
    /// others wait behind us (a writer's intent to write, a place in a
    /// queue). The mark expires by itself; a release by our token removes
    /// it at once, and the engine sends one when it gives up waiting.
    Queued,
}

/// The holder a busy answer named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Named {
    /// A client of this crate, which announces its release; its token.
    Announcing(HolderToken),
    /// Another library's client: its release is not announced.
    Silent,
}

impl Named {
    /// The holder named by `value`, a busy answer's token.
    pub(crate) fn of(value: &[u8]) -> Named {
        HolderToken::read(value).map_or(Named::Silent, Named::Announcing)
    }

    pub(crate) fn announces(self) -> bool {
        matches!(self, Named::Announcing(_))
    }
}

/// Who holds a busy lease, as a waiter asks after a busy answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Free already.
    Gone,
    /// Held until at most `free_in` from now unless extended; `announces`
    /// when the holder announces its release (a client of this crate).
    Held { free_in: Duration, announces: bool },
    /// Not known (no TTL, no answer): poll.
    Unknown,
}

/// Whom a release announces itself to, on the kind's channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Announce<'a> {
    /// No one: the undo of an attempt that never became a lease.
    Nobody,
    /// One waiter in every process (an empty message).
    Everyone,
    /// One waiter of one process, in its inbox (see `route`): only for a
    /// kind that [directs its wake-ups](Kind::directs_wake_ups).
    Named(&'a NamedWakeUp),
}

/// A release's wake-up for one waiting process (see `route`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamedWakeUp {
    /// The process's inbox on the kind's channel.
    pub(crate) inbox: String,
    /// What the release publishes there.
    pub(crate) message: String,
    /// What it publishes on the channel instead when nobody hears it there.
    pub(crate) unheard: String,
}

impl Announce<'_> {
    pub(crate) fn publishes(self) -> bool {
        self != Announce::Nobody
    }
}

/// A kind of lease.
pub(crate) trait Kind: Send + Sync + 'static {
    /// The lease's main key, exactly as given (shared: every hold's lease
    /// names it without a copy).
    fn key(&self) -> &Arc<str>;

    /// What the kind is called in metrics (`kind` label): a short fixed
    /// word, such as `"lock"` for the mutex.
    fn kind_name(&self) -> &'static str;

    /// The channel its releases are announced on.
    fn channel(&self) -> &str;

    /// The channel a waiter with `token` listens on, when it is not
    /// [`channel`](Kind::channel): a kind that wakes its waiters one at a
    /// time, each on its own channel (a fair lock's queue).
    fn waiter_channel(&self, _token: &str) -> Option<String> {
        None
    }

    /// The longest a waiter may sleep between two attempts, when each
    /// attempt keeps its mark alive (a place in a queue, which lapses if
    /// its waiter stops sending them): every wait is cut there.
    fn refresh_every(&self) -> Option<Duration> {
        None
    }

    /// Whether a grant excludes every other holder until its release or
    /// expiry (a mutex). A woken waiter that got such a lease has used up
    /// the release it was woken for: it passes no wake-up on, and tells the
    /// channel's other waiters instead that the lease is held until its TTL
    /// at the latest (what the inspection of a passed-on wake-up would have
    /// found). A lease that others may share (read holds, permits) passes
    /// the wake-up on, so that the next waiter may take its share.
    fn exclusive(&self) -> bool {
        false
    }

    /// Whether a release may wake one waiting process alone
    /// ([`Announce::Named`], see `route`): its release script publishes the
    /// message it is given, and each release wakes at most one waiter.
    fn directs_wake_ups(&self) -> bool {
        false
    }

    /// Takes the lease for `token` for `ttl` if it is free.
    fn acquire(&self, token: &str, ttl: Duration) -> Request;

    fn read_acquire(&self, reply: Value, token: &str) -> RedisResult<Grant>;

    /// Ends `token`'s hold, announced on [`channel`](Kind::channel) as
    /// `announce` says.
    fn release(&self, token: &str, announce: Announce<'_>) -> ScriptCall;

    /// Makes `token`'s hold live `ttl` from now.
    fn extend(&self, token: &str, ttl: Duration) -> ScriptCall;

    /// Asks whether `token` holds the lease.
    fn holds(&self, token: &str) -> Request;

    fn read_holds(&self, reply: Value, token: &str) -> RedisResult<bool>;

    /// Asks who holds the lease and for how long (for a waiter).
    fn holder(&self) -> Request;

    fn read_holder(&self, reply: Value) -> Holder;

    /// Asks only how long the lease is held, for a waiter whose busy answer
    /// named the holder already; `None`: ask [`holder`](Kind::holder).
    fn holder_ttl(&self) -> Option<Request> {
        None
    }

    /// Reads [`holder_ttl`](Kind::holder_ttl)'s reply, for a holder that
    /// `announces` (or not) its release.
    fn read_holder_ttl(&self, _reply: Value, _announces: bool) -> Holder {
        Holder::Unknown
    }
}
