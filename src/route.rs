//! Directed wake-ups: a release of a mutex wakes one waiting process, not
//! one waiter in every process that waits, so a handoff costs the same
//! commands however many processes wait, and wakes no other process.
//!
//! How it works, per release channel:
//! - A process (a notifier: one per server and process) has a random id.
//!   While it has waiters on the channel it announces itself there
//!   (`+<id>`): when its subscription is confirmed and every
//!   [`HEARTBEAT`]. It answers (`*<id>`, never answered in turn) a process
//!   that announces itself and that it did not know: a newcomer does not
//!   hear what was published before it subscribed (nor, once it has
//!   unsubscribed after lingering, what it had heard before). It announces
//!   leaving (`-<id>`) when its last waiter leaves.
//! - Besides the channel, a process with waiters there subscribes its own
//!   *inbox*, the channel's name followed by `:<id>` ([`inbox`]): in the
//!   channel's slot, and matched by a channel pattern that matches the
//!   channel's name followed by anything.
//! - Every subscriber hears the same announcements, so each process keeps a
//!   view of the waiting processes ([`Route`]). A releaser whose process
//!   has waiters on the channel too names the next process after its own in
//!   that view, in the order of the ids, round robin over the processes: it
//!   publishes `=<id>` in that process's inbox alone, and only that process
//!   wakes a waiter. When nobody hears it there (the process is gone, or its
//!   inbox was never subscribed), the same script publishes on the channel
//!   a release for everyone that names the process nobody heard
//!   (`!<id>`): every process drops it from its view. A releaser that knows
//!   no other waiting process, or has no waiters of its own there, wakes
//!   everyone.
//! - Anything else on the channel (an empty message: a releaser without a
//!   view, another kind of lease, another library; or a forced release)
//!   wakes one waiter per process, as before; so does a `=<id>` heard on the
//!   channel for this process (a wake-up passed on, see `channel`).
//!
//! Invariants:
//! - A wake-up is a hint: exclusion is the lock's `SET NX`, never this.
//! - A named wake-up that nobody takes (the process stopped, died, lost its
//!   connection, or left as it was named) is not lost for long: the
//!   releaser's process, which has waiters on the channel, takes the
//!   release as named for another ([`Route::heard`] with
//!   [`Message::Named`]) before the release is sent, which arms its
//!   watchdog; when it hears no release within the grace ([`GRACE`], and
//!   longer while looks find the wake-ups taken: [`MAX_GRACE`]) it wakes one
//!   waiter of its own, whose attempt looks at the lock: held, the wake-up
//!   was taken; free, it was lost, and the named process leaves the view.
//!   A named process whose waiters are all gone passes the
//!   wake-up on. A process that is gone is not subscribed: the release
//!   script then wakes everyone at once, and it leaves every view.
//! - Views forget by evidence (a leave, a release nobody heard, a
//!   watchdog's look that found the lock free), and by time only as a safety net ([`FORGET_AFTER`], three
//!   [`HEARTBEAT`]s): the heartbeats cost one `PUBLISH` per waiting process
//!   per [`HEARTBEAT`], whatever the rate of handoffs.
//! - A process whose announcements are not heard (not yet, or refused by an
//!   ACL) is woken by plain releases only, and by the watchdogs of the
//!   others' waiters; it is named once its announcement is heard, at most a
//!   [`HEARTBEAT`] later.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

/// How often a waiting process announces itself on a channel. Views learn
/// of a process from its first announcement (or its answer to theirs) and
/// forget it by evidence: heartbeats only bring back one that a watchdog
/// dropped while it was stopped, or that a view missed (its own
/// subscription was down meanwhile), and keep a process that is still
/// there from being forgotten by time.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);
/// A process not heard from for this long is dropped from the view: one
/// that went without a word (its leave lost with its connection) and was
/// never named since, which would have shown it gone.
const FORGET_AFTER: Duration = Duration::from_secs(30);
/// How long after a release named for another process this one waits for
/// more news on the channel before it suspects the wake-up was lost, at
/// first and after a wake-up that was: the *grace*.
pub(crate) const GRACE: Duration = Duration::from_millis(500);
/// The longest grace: each look that finds the named wake-up taken (the
/// lock held again: holds are long, and the lock goes round the other
/// processes before it comes back here) doubles it, up to this; one that
/// finds it lost brings it back to [`GRACE`]. Below [`ASSUMED_HOLD`].
pub(crate) const MAX_GRACE: Duration = Duration::from_secs(4);
/// After a release named for one process, the lease is taken to be held
/// by a waiter of that process for this long, unless more is heard: past
/// the [`GRACE`], so that no sleeper wakes before the watchdog would (the
/// watchdog asks for the real expiry when nothing more is heard).
pub(crate) const ASSUMED_HOLD: Duration = Duration::from_secs(5);
/// How long a process keeps its subscription and view of a channel after
/// its last waiter there left, so that waiters that come and go do not
/// subscribe again each time. One that comes back within it kept its view
/// and needs no answers; one back later is answered (see [`Route::heard`]).
pub(crate) const LINGER: Duration = Duration::from_secs(3);

/// A process's id: 16 hex digits. Not a secret: it only routes wake-ups.
pub(crate) fn new_id() -> Box<str> {
    format!("{:016x}", rand::rng().random::<u64>()).into()
}

/// The message a process publishes to announce it waits.
pub(crate) fn waiting(id: &str) -> String {
    format!("+{id}")
}

/// The message a release publishes to wake one waiter of process `id`.
pub(crate) fn named(id: &str) -> String {
    format!("={id}")
}

/// The message a release script publishes on the channel when nobody
/// heard it in the inbox of process `id`: a release for everyone (any
/// message that is not an announcement is one, for other libraries and
/// older versions too), and process `id` is gone.
pub(crate) fn unheard(id: &str) -> String {
    format!("!{id}")
}

/// The inbox of process `id` on `channel`: where releases named for it are
/// published. `channel` followed by `:<id>`: in `channel`'s slot (the
/// process id has no braces, so the first hash tag stays the channel's).
/// Never another key's release channel of the form `{key}:released`; one of
/// the form `released:key` only for a key that ends in this process's
/// random id, whose waiters here would then take a named wake-up for a
/// release: a needless try, no more (see `keys::release_channel`).
pub(crate) fn inbox(channel: &str, id: &str) -> String {
    format!("{channel}:{id}")
}

/// The channel whose inbox for process `me` is `name`, if it is one.
pub(crate) fn channel_of_inbox<'a>(name: &'a str, me: &str) -> Option<&'a str> {
    name.strip_suffix(me)?.strip_suffix(':')
}

/// A process id: 16 hex digits.
fn parse_id(text: &[u8]) -> Option<&str> {
    let is_id = text.len() == 16 && text.iter().all(u8::is_ascii_hexdigit);
    // ASCII, so this cannot fail.
    is_id.then(|| std::str::from_utf8(text).ok()).flatten()
}

/// The message a process publishes to answer a newcomer: it waits too.
pub(crate) fn answer(id: &str) -> String {
    format!("*{id}")
}

/// The message a process publishes to announce it no longer waits.
pub(crate) fn leaving(id: &str) -> String {
    format!("-{id}")
}

/// What one message on a release channel says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// A release, for one waiter of every process.
    Everyone,
    /// A release for one waiter of the process with this id.
    Named(&'a str),
    /// A release for one waiter of every process, which the process with
    /// this id did not hear in its inbox: it is gone.
    Unheard(&'a str),
    /// The process waits on the channel.
    Waiting(&'a str),
    /// The process waits on the channel, answering a newcomer.
    Answer(&'a str),
    /// The process no longer waits on the channel.
    Leaving(&'a str),
}

impl Message<'_> {
    pub(crate) fn parse(payload: &[u8]) -> Message<'_> {
        let id = parse_id;
        match payload.split_first() {
            Some((b'=', rest)) => id(rest).map_or(Message::Everyone, Message::Named),
            Some((b'!', rest)) => id(rest).map_or(Message::Everyone, Message::Unheard),
            Some((b'+', rest)) => id(rest).map_or(Message::Everyone, Message::Waiting),
            Some((b'*', rest)) => id(rest).map_or(Message::Everyone, Message::Answer),
            Some((b'-', rest)) => id(rest).map_or(Message::Everyone, Message::Leaving),
            _ => Message::Everyone,
        }
    }
}

/// What a message means for this process's waiters on the channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A release; wake one waiter here.
    Wake,
    /// A release named for another process: wake no one here. `armed`:
    /// the watchdog was not running (the task must wake to run it; one
    /// that runs fires no sooner now, so the task finds that out when it
    /// wakes for it).
    Named { armed: bool },
    /// An announcement of a process this one did not know: answer with our
    /// own, so that it knows us.
    Newcomer,
    /// Nothing to do.
    Nothing,
}

/// One process's view of a channel: who waits there, whether this process
/// does and what it announced, and the watchdog of the last release named
/// for another process.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// The processes heard on the channel, and whether each waits.
    peers: BTreeMap<Box<str>, Peer>,
    /// A release named for another process, and when to suspect it lost.
    watchdog: Option<(Instant, Box<str>)>,
    /// How many times the grace doubled (see [`MAX_GRACE`]).
    grace_doublings: u32,
    /// Whether this process has waiters on the channel.
    waiting_here: bool,
    /// When this process last announced that it waits, on the current
    /// connection (`None` after it announced leaving).
    announced: Option<Instant>,
    /// A newcomer is to be answered with an announcement: set when one is
    /// heard, cleared when an announcement is taken after that.
    answer: bool,
}

#[derive(Debug)]
struct Peer {
    heard: Instant,
    waits: bool,
}

/// What this process is to announce on the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Announcement {
    Waiting,
    Answer,
    Leaving,
}

impl Route {
    /// Takes in a message heard on the channel; `me` is this process's id.
    pub(crate) fn heard(&mut self, message: Message<'_>, me: &str, now: Instant) -> Heard {
        match message {
            Message::Everyone => {
                self.watchdog = None;
                Heard::Wake
            }
            Message::Named(id) if id == me => {
                self.watchdog = None;
                Heard::Wake
            }
            Message::Unheard(id) => {
                self.watchdog = None;
                if let Some(peer) = self.peers.get_mut(id) {
                    peer.waits = false;
                }
                Heard::Wake
            }
            Message::Named(id) => {
                let armed = self.watchdog.is_none();
                self.watchdog = Some((now + self.grace(), id.into()));
                Heard::Named { armed }
            }
            Message::Waiting(id) | Message::Answer(id) => {
                // A process known to wait heard us too; so did one that
                // left and is back within its lingering (it listened
                // meanwhile). Any other may have no view of us: one not
                // known, forgotten, or left (or dropped) longer ago than it
                // lingers. An answer is never answered.
                let new = self.peers.get(id).is_none_or(|peer| {
                    let quiet = now.saturating_duration_since(peer.heard);
                    quiet >= FORGET_AFTER || (!peer.waits && quiet >= LINGER)
                });
                let peer = Peer {
                    heard: now,
                    waits: true,
                };
                self.peers.insert(id.into(), peer);
                self.peers
                    .retain(|_, peer| now.saturating_duration_since(peer.heard) < FORGET_AFTER);
                let fresh = matches!(message, Message::Waiting(_));
                if fresh && new && id != me && self.waiting_here {
                    self.answer = true;
                    Heard::Newcomer
                } else {
                    Heard::Nothing
                }
            }
            Message::Leaving(id) => {
                self.peers.insert(
                    id.into(),
                    Peer {
                        heard: now,
                        waits: false,
                    },
                );
                Heard::Nothing
            }
        }
    }

    /// What a message means on a channel whose releases name no one: any
    /// release wakes one waiter per process, announcements mean nothing.
    pub(crate) fn heard_undirected(message: Message<'_>) -> Heard {
        match message {
            Message::Waiting(_) | Message::Answer(_) | Message::Leaving(_) => Heard::Nothing,
            Message::Everyone | Message::Named(_) | Message::Unheard(_) => Heard::Wake,
        }
    }

    /// The process a release by `me` names: the next one after `me` in the
    /// order of the ids, round robin, among those that wait and were heard
    /// from lately. `None` when no other process is known to wait: the
    /// release wakes everyone (one waiter here, and any process not heard
    /// yet).
    pub(crate) fn next<'a>(&'a self, me: &'a str, now: Instant) -> Option<&'a str> {
        let after = self
            .peers
            .range::<str, _>((Bound::Excluded(me), Bound::Unbounded));
        let before = self
            .peers
            .range::<str, _>((Bound::Unbounded, Bound::Excluded(me)));
        after.chain(before).find_map(|(id, peer)| {
            let recent = now.saturating_duration_since(peer.heard) < FORGET_AFTER;
            (peer.waits && recent).then_some(id.as_ref())
        })
    }

    /// When the watchdog is due, if it runs.
    pub(crate) fn watchdog(&self) -> Option<Instant> {
        self.watchdog.as_ref().map(|(due, _)| *due)
    }

    /// The grace a release named now gets (see [`MAX_GRACE`]).
    pub(crate) fn grace(&self) -> Duration {
        let doubled = GRACE.saturating_mul(1 << self.grace_doublings.min(8));
        doubled.min(MAX_GRACE)
    }

    /// If the watchdog is due by `now`: the named process, now suspect
    /// (wake one waiter here to look at the lock, and tell
    /// [`looked`](Route::looked) what it found).
    pub(crate) fn fire(&mut self, now: Instant) -> Option<Box<str>> {
        match self.watchdog.take() {
            Some((due, id)) if due <= now => Some(id),
            other => {
                self.watchdog = other;
                None
            }
        }
    }

    /// What an attempt here found after the watchdog fired for `suspect`:
    /// the lock held (`taken`: by the named process, for all this one
    /// knows; it stays in the view, and the next grace is longer), or free,
    /// the wake-up lost: the named process is taken as not waiting (until
    /// it is heard again), and the grace is back to [`GRACE`].
    pub(crate) fn looked(&mut self, suspect: &str, taken: bool) {
        if taken {
            self.grace_doublings = (self.grace_doublings + 1).min(8);
            return;
        }
        self.grace_doublings = 0;
        if let Some(peer) = self.peers.get_mut(suspect) {
            peer.waits = false;
        }
    }

    /// Whether this process has waiters on the channel now.
    pub(crate) fn set_waiting_here(&mut self, waiting: bool) {
        self.waiting_here = waiting;
    }

    /// What this process is to announce by `now`, on a connection where it
    /// is subscribed.
    pub(crate) fn to_announce(&self, now: Instant) -> Option<Announcement> {
        match (self.waiting_here, self.announced) {
            (true, Some(_)) if self.answer => Some(Announcement::Answer),
            (true, Some(at)) if now < at + HEARTBEAT => None,
            (true, _) => Some(Announcement::Waiting),
            (false, Some(_)) => Some(Announcement::Leaving),
            (false, None) => None,
        }
    }

    /// The announcement due by `now`, taken to be published. A waiting
    /// announcement or an answer is heard by every newcomer that asked for
    /// an answer so far (it is subscribed), so the request is met when the
    /// announcement is chosen, not when its publish returns: a newcomer
    /// heard while that publish is in flight may have subscribed after it,
    /// and is owed an answer of its own (unanswered, it would not name this
    /// process until the next heartbeat).
    pub(crate) fn take_announcement(&mut self, now: Instant) -> Option<Announcement> {
        let what = self.to_announce(now)?;
        if what != Announcement::Leaving {
            self.answer = false;
        }
        Some(what)
    }

    /// This process announced `what` at `now`.
    pub(crate) fn announced(&mut self, what: Announcement, now: Instant) {
        self.announced = match what {
            Announcement::Waiting | Announcement::Answer => Some(now),
            Announcement::Leaving => None,
        };
    }

    /// When the task must act for this channel: the watchdog, or the next
    /// heartbeat while `subscribed`.
    pub(crate) fn task_due(&self, subscribed: bool) -> Option<Instant> {
        let heartbeat = (self.announced)
            .filter(|_| subscribed && self.waiting_here)
            .map(|at| at + HEARTBEAT);
        [self.watchdog(), heartbeat].into_iter().flatten().min()
    }

    /// The subscription connection is gone: nothing was announced on the
    /// next one yet, and a named wake-up in flight may be lost with it
    /// (its waiters hear that the channel is no longer live).
    pub(crate) fn disconnected(&mut self) {
        self.announced = None;
        self.answer = false;
        self.watchdog = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "000000000000000a";
    const B: &str = "000000000000000b";
    const C: &str = "000000000000000c";

    #[test]
    fn messages_parse_and_anything_else_wakes_everyone() {
        assert_eq!(Message::parse(b"=000000000000000a"), Message::Named(A));
        assert_eq!(Message::parse(b"+000000000000000a"), Message::Waiting(A));
        assert_eq!(Message::parse(b"-000000000000000a"), Message::Leaving(A));
        assert_eq!(Message::parse(b"!000000000000000a"), Message::Unheard(A));
        assert_eq!(Message::parse(unheard(A).as_bytes()), Message::Unheard(A));
        for other in [
            &b""[..],
            b"forced",
            b"=",
            b"=00000000000000zz",
            b"+0a",
            b"!",
            b"\xff",
        ] {
            assert_eq!(Message::parse(other), Message::Everyone, "{other:?}");
        }
        assert_eq!(Message::parse(waiting(A).as_bytes()), Message::Waiting(A));
        assert_eq!(Message::parse(leaving(A).as_bytes()), Message::Leaving(A));
        assert_eq!(Message::parse(answer(A).as_bytes()), Message::Answer(A));
        let id = new_id();
        assert_eq!(
            Message::parse(waiting(&id).as_bytes()),
            Message::Waiting(&id)
        );
    }

    /// An inbox is its channel's name and the process id: found again from
    /// it for that process alone.
    #[test]
    fn an_inbox_names_its_channel_and_process() {
        let channel = "{jobs}:released";
        let inbox = inbox(channel, A);
        assert_eq!(inbox, "{jobs}:released:000000000000000a");
        assert_eq!(channel_of_inbox(&inbox, A), Some(channel));
        assert_eq!(channel_of_inbox(&inbox, B), None, "another's");
        assert_eq!(channel_of_inbox(channel, A), None, "the channel itself");
    }

    /// Round robin in the order of the ids, each releaser naming the one
    /// after itself; itself when alone; no one it has not heard lately.
    #[test]
    fn a_release_names_the_next_process_round_robin() {
        let now = Instant::now();
        let mut route = Route::default();
        assert_eq!(route.next(A, now), None, "no one known");
        route.heard(Message::Waiting(A), A, now);
        assert_eq!(route.next(A, now), None, "alone: everyone");
        route.heard(Message::Waiting(B), A, now);
        route.heard(Message::Waiting(C), A, now);
        assert_eq!(route.next(A, now), Some(B));
        assert_eq!(route.next(B, now), Some(C));
        assert_eq!(route.next(C, now), Some(A), "wraps around");
        route.heard(Message::Leaving(B), A, now);
        assert_eq!(route.next(A, now), Some(C), "B lingers, not waiting");
        let later = now + FORGET_AFTER;
        route.heard(Message::Waiting(A), A, later);
        assert_eq!(route.next(A, later), None, "C not heard lately");
    }

    /// A release named for another arms the watchdog; any other release
    /// disarms it; when it fires, the named process leaves the view.
    #[test]
    fn a_named_wake_up_nobody_takes_is_suspected_lost_after_the_grace() {
        let now = Instant::now();
        let mut route = Route::default();
        route.heard(Message::Waiting(B), A, now);
        route.heard(Message::Waiting(C), A, now);
        assert_eq!(
            route.heard(Message::Named(B), A, now),
            Heard::Named { armed: true }
        );
        assert_eq!(
            route.heard(Message::Named(C), A, now),
            Heard::Named { armed: false },
            "running already: the task need not wake"
        );
        assert_eq!(route.watchdog(), Some(now + GRACE));
        assert_eq!(route.fire(now + GRACE / 2), None);
        assert_eq!(route.heard(Message::Named(A), A, now), Heard::Wake);
        assert_eq!(route.watchdog(), None, "named for us: disarmed");
        route.heard(Message::Named(B), A, now);
        assert_eq!(route.heard(Message::Everyone, A, now), Heard::Wake);
        assert_eq!(route.watchdog(), None, "a release for everyone");
        route.heard(Message::Named(B), A, now);
        assert_eq!(route.fire(now + GRACE).as_deref(), Some(B));
        assert_eq!(route.watchdog(), None);
        assert_eq!(route.next(A, now), Some(B), "suspect, not dropped yet");
        route.looked(B, false);
        assert_eq!(route.next(A, now), Some(C), "found lost: B dropped");
    }

    /// Each look that finds the named wake-up taken doubles the grace, up
    /// to its longest; one that finds it lost brings it back.
    #[test]
    fn the_grace_grows_while_named_wake_ups_are_taken() {
        let now = Instant::now();
        let mut route = Route::default();
        route.heard(Message::Waiting(B), A, now);
        assert_eq!(route.grace(), GRACE);
        let mut graces = Vec::new();
        for _ in 0..6 {
            route.heard(Message::Named(B), A, now);
            let due = route.watchdog().unwrap();
            graces.push(due - now);
            assert_eq!(route.fire(due).as_deref(), Some(B));
            route.looked(B, true);
        }
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            graces,
            [ms(500), ms(1000), ms(2000), MAX_GRACE, MAX_GRACE, MAX_GRACE]
        );
        assert_eq!(route.next(A, now), Some(B), "taken: kept");
        assert!(MAX_GRACE < ASSUMED_HOLD);
        route.looked(B, false);
        assert_eq!(route.grace(), GRACE);
    }

    /// A release that nobody heard in the inbox it named wakes everyone,
    /// disarms the watchdog, and drops that process from the view at once,
    /// long before time would.
    #[test]
    fn a_process_nobody_heard_in_its_inbox_leaves_the_view() {
        let now = Instant::now();
        let mut route = Route::default();
        route.heard(Message::Waiting(B), A, now);
        route.heard(Message::Waiting(C), A, now);
        route.heard(Message::Named(B), A, now);
        assert_eq!(route.heard(Message::Unheard(B), A, now), Heard::Wake);
        assert_eq!(route.watchdog(), None);
        assert_eq!(route.next(A, now), Some(C), "B dropped");
        assert_eq!(route.heard(Message::Unheard(C), A, now), Heard::Wake);
        assert_eq!(route.next(A, now), None, "C dropped");
        assert_eq!(Route::heard_undirected(Message::Unheard(C)), Heard::Wake);
    }

    /// A process that waits answers a newcomer (one not heard lately: one
    /// back from lingering heard us), and no answer is answered.
    #[test]
    fn a_newcomer_is_answered_and_an_answer_is_not() {
        let now = Instant::now();
        let mut route = Route::default();
        assert_eq!(
            route.heard(Message::Waiting(B), A, now),
            Heard::Nothing,
            "no waiters here"
        );
        route.set_waiting_here(true);
        route.announced(Announcement::Waiting, now);
        assert_eq!(route.heard(Message::Waiting(C), A, now), Heard::Newcomer);
        assert_eq!(
            route.take_announcement(now),
            Some(Announcement::Answer),
            "at once"
        );
        route.announced(Announcement::Answer, now);
        assert_eq!(route.to_announce(now), None);
        assert_eq!(
            route.heard(Message::Waiting(C), A, now),
            Heard::Nothing,
            "known"
        );
        route.heard(Message::Leaving(C), A, now);
        assert_eq!(
            route.heard(Message::Waiting(C), A, now),
            Heard::Nothing,
            "back within its lingering: it kept its view"
        );
        route.heard(Message::Leaving(C), A, now);
        assert_eq!(
            route.heard(Message::Waiting(C), A, now + LINGER),
            Heard::Newcomer,
            "back after it unsubscribed: its view is gone"
        );
        route.announced(Announcement::Answer, now + LINGER);
        assert_eq!(
            route.heard(Message::Waiting(C), A, now + LINGER + HEARTBEAT),
            Heard::Nothing,
            "a heartbeat of one known to wait"
        );
        let later = now + LINGER + HEARTBEAT + FORGET_AFTER;
        assert_eq!(
            route.heard(Message::Answer(B), A, later),
            Heard::Nothing,
            "an answer"
        );
        assert_eq!(route.next(A, later), Some(B));
        assert_eq!(
            route.heard(Message::Waiting(C), A, later),
            Heard::Newcomer,
            "forgotten"
        );
        assert_eq!(
            route.heard(Message::Waiting(A), A, later),
            Heard::Nothing,
            "ourselves"
        );
    }

    /// A newcomer heard while an announcement is being published may have
    /// subscribed after it: it gets an answer of its own, whether that
    /// announcement was the first one or an answer to another newcomer.
    #[test]
    fn a_newcomer_heard_while_an_announcement_is_published_is_answered() {
        let now = Instant::now();
        let mut route = Route::default();
        route.set_waiting_here(true);
        assert_eq!(route.take_announcement(now), Some(Announcement::Waiting));
        route.heard(Message::Waiting(B), A, now);
        route.announced(Announcement::Waiting, now);
        assert_eq!(route.to_announce(now), Some(Announcement::Answer));

        assert_eq!(route.take_announcement(now), Some(Announcement::Answer));
        route.heard(Message::Waiting(C), A, now);
        route.announced(Announcement::Answer, now);
        assert_eq!(
            route.take_announcement(now),
            Some(Announcement::Answer),
            "C heard after B's answer was sent"
        );
        route.announced(Announcement::Answer, now);
        assert_eq!(route.to_announce(now), None, "all answered");
    }

    /// Waiting is announced at once and every heartbeat, leaving once.
    #[test]
    fn a_process_announces_waiting_every_heartbeat_and_leaving_once() {
        let now = Instant::now();
        let mut route = Route::default();
        assert_eq!(route.to_announce(now), None, "no waiters");
        route.set_waiting_here(true);
        assert_eq!(route.to_announce(now), Some(Announcement::Waiting));
        route.announced(Announcement::Waiting, now);
        assert_eq!(route.to_announce(now), None);
        assert_eq!(route.task_due(true), Some(now + HEARTBEAT));
        assert_eq!(route.task_due(false), None, "not subscribed");
        assert_eq!(
            route.to_announce(now + HEARTBEAT),
            Some(Announcement::Waiting)
        );
        route.set_waiting_here(false);
        assert_eq!(route.to_announce(now), Some(Announcement::Leaving));
        route.announced(Announcement::Leaving, now);
        assert_eq!(route.to_announce(now + HEARTBEAT), None);
        assert_eq!(route.task_due(true), None);
    }
}
