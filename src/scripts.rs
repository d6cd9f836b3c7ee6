//! What a kind of lease sends: [`Request`]s, and its Lua scripts in the
//! forms a node may need ([`LeaseScript`]).
//!
//! Invariants:
//! - Lua is never built from input: keys and tokens travel as `KEYS` and
//!   `ARGV`.
//! - A script is written once, announcing a release with `PUBLISH`; its
//!   sharded form (`SPUBLISH`, for a Redis Cluster) is derived from it, and
//!   which one is sent is the node's choice ([`Publish`]), nowhere else.
//! - No script starts with a `#!lua` line, on purpose: Redis refuses such
//!   scripts under `maxmemory` before they run unless they carry the
//!   `allow-oom` flag, while plain ones still release and extend leases when
//!   the server is out of memory.

use redis::aio::ConnectionLike;
use redis::{
    Arg, Cmd, ErrorKind, Pipeline, RedisResult, Script, ServerErrorKind, ToRedisArgs, Value,
};

/// How a release is announced to waiters on the node it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    /// `PUBLISH`: one server (it also reaches a whole cluster, over its bus).
    Plain,
    /// `SPUBLISH`: only the shard that owns the channel's slot, a Redis
    /// Cluster's.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Sharded,
}

/// One script of a kind of lease, sent by hash (`EVALSHA`, loading it when
/// the server answers `NOSCRIPT`: after a restart, a failover or `SCRIPT
/// FLUSH`) or by body (`EVAL`).
#[derive(Debug)]
pub(crate) struct LeaseScript {
    plain: Lua,
    sharded: Lua,
}

#[derive(Debug)]
struct Lua {
    body: String,
    script: Script,
}

impl Lua {
    fn new(body: String) -> Lua {
        Lua {
            script: Script::new(&body),
            body,
        }
    }
}

impl LeaseScript {
    /// `body` announces with `redis.pcall("PUBLISH", ...)`, if at all.
    pub(crate) fn new(body: &str) -> LeaseScript {
        LeaseScript {
            plain: Lua::new(body.to_owned()),
            sharded: Lua::new(body.replace(r#""PUBLISH""#, r#""SPUBLISH""#)),
        }
    }

    fn lua(&self, publish: Publish) -> &Lua {
        match publish {
            Publish::Plain => &self.plain,
            Publish::Sharded => &self.sharded,
        }
    }

    /// The script's text for `publish`.
    pub(crate) fn body(&self, publish: Publish) -> &str {
        &self.lua(publish).body
    }

    /// A call of this script on `keys`, to add arguments to.
    pub(crate) fn call(&'static self, keys: &[&str]) -> ScriptCall {
        // Sized up front, as `redis::Script` does: growing the buffers arg
        // by arg costs reallocations on every release. Room for the
        // arguments too (a token, a TTL or a channel and a message).
        let key_bytes: usize = keys.iter().map(|key| key.len()).sum();
        let hash = self.plain.script.get_hash();
        let mut cmd = Cmd::with_capacity(
            3 + keys.len() + ROOM_FOR_ARGS,
            "EVALSHA".len() + hash.len() + 2 + 2 * key_bytes + ROOM_FOR_ARG_BYTES,
        );
        cmd.arg("EVALSHA").arg(hash).arg(keys.len()).arg(keys);
        ScriptCall { script: self, cmd }
    }
}

/// The arguments a call makes room for, and their bytes beyond the keys'.
const ROOM_FOR_ARGS: usize = 4;
const ROOM_FOR_ARG_BYTES: usize = 96;

/// A script with its keys and arguments, ready to send either way: built
/// once as the command the common case sends, `EVALSHA` of the plain form
/// (`EVALSHA sha numkeys keys... args...`), and rebuilt only to send
/// another form (the sharded one, or `EVAL`).
#[derive(Clone, Debug)]
pub(crate) struct ScriptCall {
    script: &'static LeaseScript,
    cmd: Cmd,
}

/// The arguments of a [`ScriptCall`]'s command before its `numkeys`.
const COMMAND_AND_SCRIPT: usize = 2;

impl ScriptCall {
    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> ScriptCall {
        self.cmd.arg(arg);
        self
    }

    /// By hash (`EVALSHA`); when the server answers `NOSCRIPT`, loads the
    /// script through `redis::Script` and sends it again, as
    /// `ScriptInvocation::invoke_async` does.
    pub(crate) async fn by_hash(
        &self,
        publish: Publish,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<Value> {
        let script = &self.script.lua(publish).script;
        let rebuilt;
        let evalsha = if script.get_hash() == self.script.plain.script.get_hash() {
            &self.cmd
        } else {
            rebuilt = self.command("EVALSHA", script.get_hash());
            &rebuilt
        };
        match evalsha.query_async(connection).await {
            // Boxed: rare (a fresh or flushed server), and inline its two
            // round trips would make every script call's future and code
            // larger.
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                Box::pin(load_and_resend(script, evalsha, connection)).await
            }
            answered => answered,
        }
    }

    /// By body: `EVAL`, one command that runs whatever the server's script
    /// cache holds.
    pub(crate) fn by_body(&self, publish: Publish) -> Cmd {
        self.command("EVAL", self.script.body(publish))
    }

    /// `command script numkeys keys... args...`, the call's own command
    /// with another command and script.
    fn command(&self, command: &str, script: &str) -> Cmd {
        let rest = || self.cmd.args_iter().skip(COMMAND_AND_SCRIPT);
        let bytes: usize = rest().map(|arg| arg_bytes(&arg).len()).sum();
        let mut cmd = Cmd::with_capacity(
            COMMAND_AND_SCRIPT + rest().len(),
            command.len() + script.len() + bytes,
        );
        cmd.arg(command).arg(script);
        for arg in rest() {
            cmd.arg(arg_bytes(&arg));
        }
        cmd
    }
}

/// After `NOSCRIPT`: loads `script` and sends `evalsha` again.
async fn load_and_resend(
    script: &redis::Script,
    evalsha: &Cmd,
    connection: &mut impl ConnectionLike,
) -> RedisResult<Value> {
    script.load_async(connection).await?;
    evalsha.query_async(connection).await
}

/// A call's arguments are all plain: written by `ToRedisArgs`, never a
/// cursor (only `Cmd::cursor_arg` adds one, for `SCAN`s).
fn arg_bytes<'a>(arg: &Arg<&'a [u8]>) -> &'a [u8] {
    match arg {
        Arg::Simple(bytes) => bytes,
        _ => &[],
    }
}

/// One step of a kind of lease on one node: a command, a pipeline (one
/// round trip, its replies as one array), or a script.
#[derive(Debug)]
pub(crate) enum Request {
    Cmd(Cmd),
    Pipeline(Pipeline),
    Script(ScriptCall),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sharded_form_differs_only_in_the_publish_command() {
        let script = LeaseScript::new(r#"redis.pcall("PUBLISH", ARGV[1], "") return 1"#);
        assert_eq!(
            script.body(Publish::Sharded),
            r#"redis.pcall("SPUBLISH", ARGV[1], "") return 1"#
        );
        let quiet = LeaseScript::new("return KEYS[1]");
        assert_eq!(quiet.body(Publish::Plain), quiet.body(Publish::Sharded));
    }

    fn args_of(cmd: &Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|arg| String::from_utf8_lossy(arg_bytes(&arg)).into_owned())
            .collect()
    }

    /// The command built once is the plain form's `EVALSHA`; the sharded
    /// form's is the same but for its hash.
    #[test]
    fn by_hash_sends_the_forms_hash_then_keys_then_args() {
        static SCRIPT: std::sync::LazyLock<LeaseScript> = std::sync::LazyLock::new(|| {
            LeaseScript::new(r#"redis.pcall("PUBLISH", ARGV[2], "") return 1"#)
        });
        let call = SCRIPT.call(&["k", "l"]).arg("a").arg(7);
        let plain = SCRIPT.plain.script.get_hash();
        assert_eq!(
            args_of(&call.cmd),
            ["EVALSHA", plain, "2", "k", "l", "a", "7"]
        );
        let sharded = SCRIPT.sharded.script.get_hash();
        assert_ne!(plain, sharded);
        assert_eq!(
            args_of(&call.command("EVALSHA", sharded)),
            ["EVALSHA", sharded, "2", "k", "l", "a", "7"]
        );
    }

    #[test]
    fn by_body_sends_keys_then_args() {
        static SCRIPT: std::sync::LazyLock<LeaseScript> =
            std::sync::LazyLock::new(|| LeaseScript::new("return 1"));
        let cmd = SCRIPT.call(&["k"]).arg("a").arg(7).by_body(Publish::Plain);
        let args: Vec<String> = cmd
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "not a plain argument".into(),
            })
            .collect();
        assert_eq!(args, ["EVAL", "return 1", "1", "k", "a", "7"]);
    }
}
