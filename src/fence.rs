//! Fencing: where a lock's fence counter lives.
//!
//! # Where the counter lives
//!
//! The counter of a lock on `key` is `{key}:fence`, or `key:fence` when `key`
//! already has a hash tag, so that the lock and its counter are in one Redis
//! Cluster slot and one script can touch both. Redis Cluster hashes only the
//! *hash tag* of a key when it has one: the bytes between the first `{` and the
//! first `}` after it, if there are any. Otherwise it hashes the whole key.
//!
//! - `key` has a hash tag: `key:fence` has the same first `{` and the same
//!   first `}` after it, so the same tag. Same slot.
//! - `key` has no hash tag and no `}`: in `{key}:fence` the first `}` is the
//!   one added, so the tag is `key`, which is what Cluster hashes for `key`.
//!   Same slot.
//! - `key` has no hash tag but has a `}` (`a}b`, `}x`, `x{}y}`, `{}`): any key
//!   that hashes the whole of `key` would need `key` as its tag, which cannot
//!   contain a `}`, or be `key` itself. No counter key can share the slot, so
//!   such names are refused when fencing is on.

use crate::error::{Error, Result};

/// The suffix of a lock's fence counter key.
const FENCE_SUFFIX: &str = ":fence";

/// The non-empty hash tag of `key`, if it has one: the bytes between the
/// first `{` and the first `}` after it, as in `keyHashSlot` in Redis's
/// `cluster.c`. Redis Cluster hashes the tag when there is one, otherwise the
/// whole key.
pub(crate) fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let after = &key[open + 1..];
    let close = after.find('}')?;
    (close > 0).then(|| &after[..close])
}

/// The name of a key that lives in the same Cluster slot as `key`:
/// `{key}suffix`, or `keysuffix` when `key` has a hash tag. `suffix` has no
/// braces. Fails for the names that no such key exists for (see the module
/// docs).
fn companion_key(key: &str, suffix: &str) -> Result<String> {
    if hash_tag(key).is_some() {
        return Ok(format!("{key}{suffix}"));
    }
    if key.contains('}') {
        return Err(Error::invalid(
            "key",
            "with fencing, a key must not contain '}' outside a hash tag (as in \"a}b\" or \
             \"x{}y}\"): Redis Cluster would hash the whole key, and no fence key could share \
             its slot; use a hash tag such as \"{orders}:lock\" or a name without '}'",
        ));
    }
    Ok(format!("{{{key}}}{suffix}"))
}

/// The fence counter key of a lock on `key`.
pub(crate) fn fence_key(key: &str) -> Result<String> {
    companion_key(key, FENCE_SUFFIX)
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
        let err = fence_key("a}b").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { field: "key", reason } if reason.contains("hash tag")),
            "{err:?}"
        );
    }

    /// Every key of up to 6 characters over an alphabet of braces and
    /// letters (5,460 keys, every arrangement of `{` and `}`), and some
    /// longer ones: the fence key is refused exactly when no key could share
    /// the lock key's slot, and otherwise is in the same slot.
    #[test]
    fn fence_key_is_in_the_lock_key_slot_or_refused_exactly_when_it_cannot_be() {
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
                "ключ:{замок}",
                "🔒{🔑}",
                "a{🔑",
            ]
            .map(String::from),
        );
        keys.push("k".repeat(65_536));
        keys.push(format!("{{{}}}", "t".repeat(65_536)));

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
}
