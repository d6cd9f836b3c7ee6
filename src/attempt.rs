//! The outcome of one acquire attempt on a topology, as the attempt loop
//! reads it.

use tokio::time::Instant;

use crate::error::Error;
use crate::kind::Named;

/// The outcome of one acquire attempt.
#[derive(Debug)]
pub(crate) enum AcquireStep {
    /// The token now holds the lease. It counts from `sent_at`, or, when
    /// `from_earlier_send`, from an earlier send of the same token. `fence`
    /// is the acquisition's fence when the kind fences.
    Acquired {
        sent_at: Instant,
        from_earlier_send: bool,
        fence: Option<u64>,
    },
    /// Not acquired: worth another try under the wait policy. `failed` is
    /// the error to report if the wait ends now, `None` for plain
    /// contention ([`Error::Busy`]). When `token_spent`, the next attempt
    /// needs a fresh token. When `queued`, the token left a mark (see
    /// `Grant::Queued`) that must be released if the acquire gives up;
    /// otherwise nothing of ours is left behind. `named`: the holder a busy
    /// answer named (see `Grant::Busy`).
    Retry {
        failed: Option<Error>,
        token_spent: bool,
        queued: bool,
        named: Option<Named>,
    },
    /// Give up with `error`. `maybe_set`: whether our token may have been
    /// set on a node, so that it needs releasing.
    Fail { error: Error, maybe_set: bool },
}
