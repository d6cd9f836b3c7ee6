//! Waiting for a release: waiters are woken through pub/sub when the holder
//! releases, instead of polling.
//!
//! The release script deletes the lock and, in the same script, `PUBLISH`es
//! on the key's [release channel](release_channel).

use crate::fence::hash_tag;

/// What the release channel's name adds to the key.
const CHANNEL_SUFFIX: &str = ":released";

/// The channel a release of `key` is announced on: `{key}:released`, or
/// `key:released` when the key has a hash tag, so that it hashes to the key's
/// Cluster slot (for sharded pub/sub). A key with a `}` outside a hash tag
/// (`"a}b"`) cannot share its slot with any other name and also gets
/// `key:released`; with plain `PUBLISH`, which reaches every node, the slot
/// does not matter.
pub(crate) fn release_channel(key: &str) -> String {
    if hash_tag(key).is_some() || key.contains('}') {
        format!("{key}{CHANNEL_SUFFIX}")
    } else {
        format!("{{{key}}}{CHANNEL_SUFFIX}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot_tag(name: &str) -> &str {
        hash_tag(name).unwrap_or(name)
    }

    #[test]
    fn release_channels_share_the_keys_cluster_slot() {
        for (key, channel) in [
            ("orders", "{orders}:released"),
            ("{orders}:lock", "{orders}:lock:released"),
            ("a{b", "{a{b}:released"),
            ("{", "{{}:released"),
        ] {
            assert_eq!(release_channel(key), channel);
            assert_eq!(slot_tag(&release_channel(key)), slot_tag(key), "{key}");
        }
        // No name shares the slot of a key hashed whole despite a `}`.
        assert_eq!(release_channel("a}b"), "a}b:released");
        assert_eq!(release_channel("foo{}bar"), "foo{}bar:released");
    }
}
