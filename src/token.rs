//! Lock tokens: the random value that proves which owner holds a lock.
//!
//! Invariants:
//! - Every token is 160 bits from a CSPRNG seeded by the operating system:
//!   a ChaCha12 generator per thread ([`StdRng`]), seeded from `getrandom`
//!   on the thread's first token and again every [`TOKENS_PER_SEED`]
//!   tokens, so that the uncontended path makes no system call for it.
//! - A forked child never repeats its parent's tokens: a fork (counted by a
//!   `pthread_atfork` handler, `forks.rs`) makes every thread's generator reseed before
//!   its next token. Two holders with one token would both pass the
//!   token check.
//! - A [`Token`]'s bytes are ASCII lowercase hex digits, written only by
//!   [`Token::generate`]; [`Token::as_str`] relies on it (unchecked UTF-8).

use std::cell::RefCell;
use std::fmt;

use rand::rngs::{StdRng, SysRng};
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::forks;

/// Random bytes per token: 160 bits, as in the Redlock reference (20 bytes of
/// `/dev/urandom`), comfortably above the 128 bits the crate promises.
const TOKEN_BYTES: usize = 20;

/// Hex digits of a token that `Debug` shows: enough to tell tokens apart in
/// logs, far too few to forge one.
const SHOWN_HEX_DIGITS: usize = 6;

/// Tokens drawn from one seed: 20 KiB of output, below the 64 KiB after
/// which rand's own `ThreadRng` reseeds.
const TOKENS_PER_SEED: u32 = 1024;

/// A thread's generator: the forks it was seeded after, and the tokens left
/// before the next seed.
struct Source {
    rng: StdRng,
    forks: u64,
    left: u32,
}

thread_local! {
    static SOURCE: RefCell<Option<Source>> = const { RefCell::new(None) };
}

/// `bytes` from this thread's generator, reseeded from the OS when due.
fn fill(bytes: &mut [u8]) -> Result<()> {
    SOURCE.with_borrow_mut(|source| {
        let forks = forks::counted();
        let fresh = match source {
            Some(s) if s.left > 0 && s.forks == forks => s,
            _ => {
                let forks = forks::count();
                let rng = StdRng::try_from_rng(&mut SysRng).map_err(Error::Random)?;
                source.insert(Source {
                    rng,
                    forks,
                    left: TOKENS_PER_SEED,
                })
            }
        };
        fresh.left -= 1;
        fresh.rng.fill_bytes(bytes);
        Ok(())
    })
}

/// A lock token: 160 random bits from a CSPRNG seeded by the OS, as 40 lowercase hex
/// characters on the wire.
///
/// A fresh token is made for every acquisition, from a generator seeded by
/// the operating system (see the module's invariants), so tokens are unique
/// across threads, processes, forks and restarts. `Debug` shows only a
/// short prefix.
///
/// Stored inline as its 40 hex bytes: no allocation per acquire.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token([u8; TOKEN_BYTES * 2]);

impl Token {
    pub(crate) fn generate() -> Result<Token> {
        let mut bytes = [0u8; TOKEN_BYTES];
        fill(&mut bytes)?;
        // One lookup of a ready pair of hex digits per byte.
        let mut hex = [0u8; TOKEN_BYTES * 2];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(bytes) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
        Ok(Token(hex))
    }

    /// The whole token, for the wire only. Never log it.
    pub(crate) fn as_str(&self) -> &str {
        // Unchecked: `from_utf8` on every call (five per acquire and
        // release) cost ~270 instructions per cycle, more than the heap
        // `String` this replaced.
        // SAFETY: the bytes are set only by `generate`, from `HEX_PAIRS`:
        // ASCII hex digits, which are UTF-8 (the module's invariants).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

/// Every byte's two lowercase hex digits, by the byte's value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether `value` looks like a token of this crate: 40 lowercase hex
/// digits. The tokens of redis-py, node-redlock, redsync and bsm/redislock
/// (32 hex digits, or base64) do not; such a holder never announces its
/// release, so a waiter polls for it. Bytes, not text: a foreign token need
/// not be UTF-8 (rslock's are raw random bytes).
pub(crate) fn has_token_format(value: &[u8]) -> bool {
    // A range test per byte: `HEX.contains` is a `memchr` call per byte,
    // ~80 instructions each, 3,300 per busy answer (callgrind).
    value.len() == TOKEN_BYTES * 2 && value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A token of this crate as a busy answer named its holder: compared with
/// this process's own recent tokens (see `recent`), never shown whole.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HolderToken([u8; TOKEN_BYTES * 2]);

impl HolderToken {
    /// `value`, if it has this crate's token format.
    pub(crate) fn read(value: &[u8]) -> Option<HolderToken> {
        if !has_token_format(value) {
            return None;
        }
        let mut bytes = [0u8; TOKEN_BYTES * 2];
        bytes.copy_from_slice(value);
        Some(HolderToken(bytes))
    }

    /// An acquire's own token (a [`Token`]'s text): its bytes, unchecked.
    pub(crate) fn own(token: &str) -> Option<HolderToken> {
        token.as_bytes().try_into().ok().map(HolderToken)
    }
}

impl fmt::Debug for HolderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = String::from_utf8_lossy(&self.0[..SHOWN_HEX_DIGITS]);
        write!(f, "HolderToken({shown}…)")
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", &self.as_str()[..SHOWN_HEX_DIGITS])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn tokens_are_long_hex_and_unique() {
        let tokens: HashSet<String> = (0..100_000)
            .map(|_| Token::generate().unwrap().as_str().to_owned())
            .collect();
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
            // One byte past the ends of the digit ranges: `/` `:` `` ` `` `g`.
            "/f2b8c1e9a7d4e6f8b0c2d4e6f8a0b1c2d3e4f5a",
            "3f2b8c1e9a7d4e6f8b0c2d4e6f8a0b1c2d3e4f5:",
            "3f2b8c1e9a7d4e6f8b0c2d`e6f8a0b1c2d3e4f5a",
            "3f2b8c1e9a7d4e6f8b0c2d4e6f8a0b1c2d3e4f5g",
            "",
        ] {
            assert!(!has_token_format(foreign.as_bytes()), "{foreign}");
        }
    }

    /// A child's generator is its parent's, copied by `fork`: unless the
    /// fork makes it reseed, parent and child draw the same next token.
    #[cfg(unix)]
    #[test]
    fn a_forked_child_draws_other_tokens_than_its_parent() {
        Token::generate().unwrap(); // Seeded, and forks counted.
        let mut pipe = [0; 2];
        // SAFETY: a pipe for the child's token; the child only draws a
        // token, writes it and exits without unwinding.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let token = Token::generate().map(|t| t.0).unwrap_or([0; 40]);
            unsafe {
                libc::write(pipe[1], token.as_ptr().cast(), token.len());
                libc::_exit(0);
            }
        }
        let parent = Token::generate().unwrap();
        let mut child = [0u8; TOKEN_BYTES * 2];
        let read = unsafe { libc::read(pipe[0], child.as_mut_ptr().cast(), child.len()) };
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
        assert_eq!(read, child.len() as isize, "the child drew a token");
        assert_ne!(&child[..], parent.as_str().as_bytes());
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
