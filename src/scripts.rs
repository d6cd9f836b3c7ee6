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
use redis::{Cmd, ErrorKind, Pipeline, RedisResult, Script, ServerErrorKind, ToRedisArgs, Value};

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

    /// A call of this script, to add keys and arguments to.
    pub(crate) fn call(&'static self) -> ScriptCall {
        ScriptCall {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// A script with its keys and arguments, ready to send either way.
#[derive(Clone, Debug)]
pub(crate) struct ScriptCall {
    script: &'static LeaseScript,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl ScriptCall {
    pub(crate) fn key(mut self, key: impl ToRedisArgs) -> ScriptCall {
        key.write_redis_args(&mut self.keys);
        self
    }

    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> ScriptCall {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// By hash (`EVALSHA`); when the server answers `NOSCRIPT`, loads the
    /// script through `redis::Script` and sends it again, as
    /// `ScriptInvocation::invoke_async` does, without copying the keys and
    /// arguments into one first.
    pub(crate) async fn by_hash(
        &self,
        publish: Publish,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<Value> {
        let script = &self.script.lua(publish).script;
        let evalsha = self.command("EVALSHA", script.get_hash());
        match evalsha.query_async(connection).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                script.load_async(connection).await?;
                evalsha.query_async(connection).await
            }
            answered => answered,
        }
    }

    /// By body: `EVAL`, one command that runs whatever the server's script
    /// cache holds.
    pub(crate) fn by_body(&self, publish: Publish) -> Cmd {
        self.command("EVAL", self.script.body(publish))
    }

    /// `command script numkeys keys... args...`.
    fn command(&self, command: &str, script: &str) -> Cmd {
        // Sized up front, as `redis::Script` does: growing the buffer arg by
        // arg costs reallocations on every release.
        let args = 3 + self.keys.len() + self.args.len();
        let bytes: usize = self.keys.iter().chain(&self.args).map(Vec::len).sum();
        let mut cmd = Cmd::with_capacity(args, command.len() + script.len() + bytes + 4);
        cmd.arg(command)
            .arg(script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
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

    #[test]
    fn by_body_sends_keys_then_args() {
        static SCRIPT: std::sync::LazyLock<LeaseScript> =
            std::sync::LazyLock::new(|| LeaseScript::new("return 1"));
        let cmd = SCRIPT
            .call()
            .key("k")
            .arg("a")
            .arg(7)
            .by_body(Publish::Plain);
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
