//! Key naming: every key of a lease lives in its main key's Redis Cluster
//! slot, so that one script can touch them all.
//!
//! Invariants:
//! - The main key is the name given, exactly (interop with redis-py,
//!   node-redlock, redsync); it is never empty.
//! - A companion key (fence counter, last fence) is `{key}suffix`, or
//!   `keysuffix` when `key` has a hash tag: both hash to `key`'s slot.
//! - The release channel is `{key}:released` when `key` has no `}`, and
//!   `released:key` when it has one. No two keys share a channel (the first
//!   form starts with `{`, the second with `r`, and each gives back its key),
//!   and it hashes to `key`'s slot whenever any name can.
//! - A key with a `}` outside a hash tag (`a}b`, `x{}y}`) is hashed whole, so
//!   no other name shares its slot: companion *keys* are refused for it; its
//!   release *channel* is known not to share the slot.
//!
//! Why: Redis Cluster hashes only the *hash tag* of a key when it has one
//! (the bytes between the first `{` and the first `}` after it, if any),
//! otherwise the whole key. With a tag, `key:x` keeps the same first `{` and
//! first `}` after it, and so does `x:key` when `x` has no braces. Without a
//! tag and without a `}`, the first `}` of `{key}:x` is the one added, so its
//! tag is `key`. Without a tag but with a `}`, a name sharing the slot would
//! need `key` as its tag, which cannot contain a `}`.
//!
//! Channels were `{key}:released`, or `key:released` when `key` has a hash
//! tag, until `x` and `{x}` turned out to share `{x}:released`: keys with a
//! `}` moved to `released:key`.

use crate::error::{Error, Result};

/// The suffix of a lock's fence counter key.
const FENCE_SUFFIX: &str = ":fence";

/// The suffix of the key where a fenced resource keeps the last fence it
/// accepted. Not `:fence`, so that a resource named like a lock never shares
/// the lock's counter.
const LAST_FENCE_SUFFIX: &str = ":last-fence";

/// What the release channel's name adds after a key without `}`.
const CHANNEL_SUFFIX: &str = ":released";

const READERS_SUFFIX: &str = ":readers";

const WRITE_INTENT_SUFFIX: &str = ":writer-waiting";

const READERS_CHANNEL_SUFFIX: &str = ":readers-released";

const QUEUE_SUFFIX: &str = ":queue";

const QUEUE_EXPIRY_SUFFIX: &str = ":queue-expiry";

/// What a fair lock's waiter's channel adds after the key; the waiter's id
/// follows.
const TURN_CHANNEL_SUFFIX: &str = ":turn:";

/// What the release channel's name puts before a key with a `}`: no braces,
/// so the channel keeps the key's hash tag.
const CHANNEL_PREFIX: &str = "released:";

/// Refuses an empty key, the one name no lock or resource may have.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key", "must not be empty"));
    }
    Ok(())
}

/// The non-empty hash tag of `key`, if it has one: the bytes between the
/// first `{` and the first `}` after it, as in `keyHashSlot` in Redis's
/// `cluster.c`.
pub(crate) fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let after = &key[open + 1..];
    let close = after.find('}')?;
    (close > 0).then(|| &after[..close])
}

/// Whether a name made from `key` (a companion key, the release channel)
/// can share `key`'s slot: always, unless the key has a `}` but no hash tag.
pub(crate) fn shares_slot(key: &str) -> bool {
    hash_tag(key).is_some() || !key.contains('}')
}

/// `{key}suffix`, or `keysuffix` when `key` has a hash tag; in `key`'s slot
/// for a key that [`shares_slot`].
fn slot_name(key: &str, suffix: &str) -> String {
    if hash_tag(key).is_some() {
        format!("{key}{suffix}")
    } else {
        format!("{{{key}}}{suffix}")
    }
}

/// A key in `key`'s slot (see the module docs); refused for the names no
/// such key exists for, saying what needed it (`purpose`).
fn companion_key(key: &str, suffix: &str, purpose: &str) -> Result<String> {
    if !shares_slot(key) {
        return Err(Error::invalid(
            "key",
            format!(
                "{purpose}, a key must not contain '}}' outside a hash tag (as in \"a}}b\" or \
                 \"x{{}}y}}\"): Redis Cluster would hash the whole key, and no companion key could \
                 share its slot; use a hash tag such as \"{{orders}}:lock\" or a name without '}}'"
            ),
        ));
    }
    Ok(slot_name(key, suffix))
}

/// The fence counter key of a lock on `key`.
pub(crate) fn fence_key(key: &str) -> Result<String> {
    companion_key(key, FENCE_SUFFIX, "with fencing")
}

/// The key of a fenced resource's last accepted fence.
pub(crate) fn last_fence_key(key: &str) -> Result<String> {
    companion_key(key, LAST_FENCE_SUFFIX, "with fencing")
}

/// The sorted set of a read-write lock's readers on `key`.
pub(crate) fn readers_key(key: &str) -> Result<String> {
    companion_key(key, READERS_SUFFIX, "for a read-write lock")
}

/// The channel a read-write lock's waiting writers listen on: its writer's
/// release, and its last reader's, are announced there.
pub(crate) fn readers_channel(key: &str) -> Result<String> {
    companion_key(key, READERS_CHANNEL_SUFFIX, "for a read-write lock")
}

/// The mark of a writer waiting for a read-write lock's readers on `key`.
pub(crate) fn write_intent_key(key: &str) -> Result<String> {
    companion_key(key, WRITE_INTENT_SUFFIX, "for a read-write lock")
}

/// The queue of a fair lock on `key`: waiters' tokens scored by their
/// place in line.
pub(crate) fn queue_key(key: &str) -> Result<String> {
    companion_key(key, QUEUE_SUFFIX, "for a fair lock")
}

/// When each place in a fair lock's queue lapses: waiters' tokens scored by
/// an instant of the server's clock.
pub(crate) fn queue_expiry_key(key: &str) -> Result<String> {
    companion_key(key, QUEUE_EXPIRY_SUFFIX, "for a fair lock")
}

/// The start of the name of a fair lock's waiter's own channel (its id
/// follows): in `key`'s slot, as the companion keys are.
pub(crate) fn turn_channel_prefix(key: &str) -> Result<String> {
    companion_key(key, TURN_CHANNEL_SUFFIX, "for a fair lock")
}

/// The channel a release of `key` is announced on: `{key}:released` when the
/// key has no `}`, else `released:key` (see the module docs). Distinct for
/// every key, and in the key's slot (for sharded pub/sub) whenever
/// [`shares_slot`]; plain `PUBLISH` reaches every node anyway.
pub(crate) fn release_channel(key: &str) -> String {
    if key.contains('}') {
        format!("{CHANNEL_PREFIX}{key}")
    } else {
        format!("{{{key}}}{CHANNEL_SUFFIX}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part of `key` that Redis Cluster hashes to pick a slot.
    fn hashed_part(key: &str) -> &str {
        hash_tag(key).unwrap_or(key)
    }
    /// CRC16-CCITT (XMODEM), the checksum Redis Cluster takes modulo 16384.
    fn crc16(bytes: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &byte in bytes {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    /// The Cluster slot of `key`, by the rule written out independently of
    /// `hash_tag`, on bytes as `cluster.c` does.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let hashed = match bytes.iter().position(|&b| b == b'{') {
            None => bytes,
            Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
                None | Some(0) => bytes,
                Some(len) => &bytes[open + 1..open + 1 + len],
            },
        };
        crc16(hashed) % 16384
    }

    #[test]
    fn crc16_and_slots_match_the_cluster_spec() {
        // The check value of CRC16/XMODEM, and slots the Redis docs show.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(slot("foo{{bar}}zap"), crc16(b"{bar") % 16384);
        assert_eq!(slot("foo{bar}{zap}"), crc16(b"bar") % 16384);
    }

    #[test]
    fn hash_tags_follow_the_cluster_rule() {
        for (key, tag) in [
            ("plain", None),
            ("{user1000}.following", Some("user1000")),
            ("foo{}{bar}", None),
            ("foo{{bar}}zap", Some("{bar")),
            ("foo{bar}{zap}", Some("bar")),
            ("{}", None),
            ("a{b", None),
            ("a}b{c}", Some("c")),
            ("}{x}", Some("x")),
            ("{", None),
            ("}", None),
        ] {
            assert_eq!(hash_tag(key), tag, "{key:?}");
        }
    }

    #[test]
    fn fence_keys_are_named_as_documented() {
        assert_eq!(fence_key("orders").unwrap(), "{orders}:fence");
        assert_eq!(fence_key("{orders}:lock").unwrap(), "{orders}:lock:fence");
        assert_eq!(fence_key("a{b").unwrap(), "{a{b}:fence");
        assert_eq!(fence_key("{").unwrap(), "{{}:fence");
        assert_eq!(last_fence_key("orders").unwrap(), "{orders}:last-fence");
        let err = fence_key("a}b").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { field: "key", reason } if reason.contains("hash tag")),
            "{err:?}"
        );
    }

    fn tricky_keys() -> Vec<String> {
        let alphabet = ['{', '}', 'a', 'b'];
        let mut keys: Vec<String> = vec![];
        let mut layer = vec![String::new()];
        for _ in 0..6 {
            layer = layer
                .iter()
                .flat_map(|prefix| alphabet.iter().map(move |c| format!("{prefix}{c}")))
                .collect();
            keys.extend(layer.iter().cloned());
        }
        keys.extend(
            [
                "lock:orders",
                "{tenant:7}:lock:orders",
                "lock:{tenant:7}:orders",
                "lock:{}x}",
                "}x",
                "x{}y}",
                "x",
                "{x}",
                "{x}:x",
                "{x}:released",
                "{x}:released:released",
                "released:{x}",
                "released:x",
                "x:released",
                "ключ:{замок}",
                "🔒{🔑}",
                "a{🔑",
            ]
            .map(String::from),
        );
        keys.push("k".repeat(65_536));
        keys.push(format!("{{{}}}", "t".repeat(65_536)));
        keys
    }

    /// Every key of up to 6 characters over an alphabet of braces and
    /// letters (5,460 keys, every arrangement of `{` and `}`), and some
    /// longer ones: the fence key is refused exactly when no key could share
    /// the lock key's slot, and otherwise is in the same slot.
    #[test]
    fn fence_key_is_in_the_lock_key_slot_or_refused_exactly_when_it_cannot_be() {
        let keys = tricky_keys();
        let (mut accepted, mut refused) = (0, 0);
        for key in &keys {
            // The construction the docs promise, without the refusal.
            let candidate = if hash_tag(key).is_some() {
                format!("{key}:fence")
            } else {
                format!("{{{key}}}:fence")
            };
            let shares_hashed_part = hashed_part(key) == hashed_part(&candidate);
            match fence_key(key) {
                Ok(fence) => {
                    accepted += 1;
                    assert_eq!(fence, candidate);
                    assert!(shares_hashed_part, "{key:?}");
                    assert_eq!(slot(key), slot(&fence), "{key:?} vs {fence:?}");
                }
                Err(_) => {
                    refused += 1;
                    assert!(!shares_hashed_part, "refused needlessly: {key:?}");
                    // Refused names are those that hash whole and contain '}':
                    // no key hashes all of them except the key itself.
                    assert!(hash_tag(key).is_none() && key.contains('}'), "{key:?}");
                }
            }
        }
        assert!(accepted > 2_000 && refused > 2_000, "{accepted} {refused}");
    }

    #[test]
    fn a_resource_keeps_its_last_fence_in_its_own_slot_apart_from_the_lock_counter() {
        assert_eq!(last_fence_key("orders").unwrap(), "{orders}:last-fence");
        assert_ne!(
            last_fence_key("orders").unwrap(),
            fence_key("orders").unwrap()
        );
        assert_eq!(last_fence_key("{t}x}").unwrap(), "{t}x}:last-fence");
        assert_eq!(slot("{t}x}"), slot("{t}x}:last-fence"));
        assert!(last_fence_key("x}").is_err());
    }

    #[test]
    fn release_channels_are_named_as_documented() {
        for (key, channel) in [
            ("orders", "{orders}:released"),
            ("a{b", "{a{b}:released"),
            ("{", "{{}:released"),
            ("{orders}:lock", "released:{orders}:lock"),
            ("{x}", "released:{x}"),
            ("a}b", "released:a}b"),
            ("foo{}bar}", "released:foo{}bar}"),
        ] {
            assert_eq!(release_channel(key), channel, "{key:?}");
        }
    }

    /// The channel of `x` and that of `{x}` were both `{x}:released`: a
    /// release of one woke a waiter of the other. No two keys share a
    /// channel, and a channel is in its key's slot whenever any name can be.
    #[test]
    fn release_channels_are_distinct_per_key_and_in_the_keys_slot() {
        let keys = tricky_keys();
        let mut seen = std::collections::HashMap::new();
        for key in &keys {
            let channel = release_channel(key);
            if let Some(other) = seen.insert(channel.clone(), key) {
                panic!("{key:?} and {other:?} share the channel {channel:?}");
            }
            if shares_slot(key) {
                assert_eq!(slot(key), slot(&channel), "{key:?} vs {channel:?}");
                assert_eq!(hashed_part(key), hashed_part(&channel), "{key:?}");
            } else {
                // Hashed whole despite a `}`: no other name shares the slot.
                assert!(hash_tag(key).is_none() && key.contains('}'), "{key:?}");
            }
        }
        assert_eq!(seen.len(), keys.len());
        for key in ["orders", "{orders}:lock", "a{b", "{", "{x}"] {
            assert!(shares_slot(key), "{key}");
        }
        for key in ["a}b", "foo{}bar", "{}"] {
            assert!(!shares_slot(key), "{key}");
        }
    }

    #[test]
    fn a_fair_locks_names_share_its_slot() {
        for key in ["orders", "{orders}:lock", "a{b"] {
            for name in [
                queue_key(key).unwrap(),
                queue_expiry_key(key).unwrap(),
                format!("{}{}", turn_channel_prefix(key).unwrap(), "f".repeat(40)),
            ] {
                assert_eq!(slot(key), slot(&name), "{key:?} vs {name:?}");
            }
        }
        assert_eq!(queue_key("orders").unwrap(), "{orders}:queue");
        assert!(queue_key("a}b").is_err());
    }

    #[test]
    fn empty_key_is_rejected() {
        let err = check_key("").unwrap_err();
        assert_eq!(err.to_string(), "invalid key: must not be empty");
    }
}
