//! Lock tokens: the random value that proves which owner holds a lock.

use std::fmt;

use rand::TryRng;
use rand::rngs::SysRng;

use crate::error::{Error, Result};

/// Random bytes per token: 160 bits, as in the Redlock reference (20 bytes of
/// `/dev/urandom`), comfortably above the 128 bits the crate promises.
const TOKEN_BYTES: usize = 20;

/// Hex digits of a token that `Debug` shows: enough to tell tokens apart in
/// logs, far too few to forge one.
const SHOWN_HEX_DIGITS: usize = 6;

/// A lock token: 160 random bits from the OS CSPRNG, as 40 lowercase hex
/// characters on the wire.
///
/// A fresh token is made for every acquisition, straight from the operating
/// system (`getrandom`), so tokens are unique across processes, forks and
/// restarts. `Debug` shows only a short prefix.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl Token {
    pub(crate) fn generate() -> Result<Token> {
        let mut bytes = [0u8; TOKEN_BYTES];
        SysRng.try_fill_bytes(&mut bytes).map_err(Error::Random)?;
        let mut hex = String::with_capacity(TOKEN_BYTES * 2);
        for byte in bytes {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Ok(Token(hex))
    }

    /// The whole token, for the wire only. Never log it.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `value` looks like a token of this crate: 40 lowercase hex
/// digits. The tokens of redis-py, node-redlock, redsync and bsm/redislock
/// (32 hex digits, or base64) do not; such a holder never announces its
/// release, so a waiter polls for it. Bytes, not text: a foreign token need
/// not be UTF-8 (rslock's are raw random bytes).
pub(crate) fn has_token_format(value: &[u8]) -> bool {
    value.len() == TOKEN_BYTES * 2 && value.iter().all(|b| HEX.contains(b))
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", &self.0[..SHOWN_HEX_DIGITS])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tokens_are_long_hex_and_unique() {
        let tokens: HashSet<String> = (0..100_000).map(|_| Token::generate().unwrap().0).collect();
        assert_eq!(tokens.len(), 100_000);
        for token in tokens.iter().take(100) {
            assert_eq!(token.len(), 40);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn own_tokens_are_told_from_other_libraries_tokens() {
        assert!(has_token_format(
            Token::generate().unwrap().as_str().as_bytes()
        ));
        assert!(!has_token_format(&[0xff; 40]), "raw bytes (rslock)");
        for foreign in [
            "3f2b8c1e9a7d4e6f8b0c2d4e6f8a0b1c", // redis-py, node-redlock
            "q2x8Zr1mN4vB7tK0pL3sYw==",         // redsync
            "q2x8Zr1mN4vB7tK0pL3sYw",           // bsm/redislock
            "3F2B8C1E9A7D4E6F8B0C2D4E6F8A0B1C2D3E4F5A", // upper case
            "",
        ] {
            assert!(!has_token_format(foreign.as_bytes()), "{foreign}");
        }
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let token = Token::generate().unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains(token.as_str()));
        assert!(shown.contains(&token.as_str()[..SHOWN_HEX_DIGITS]));
        assert!(shown.len() < 20, "{shown}");
    }
}
