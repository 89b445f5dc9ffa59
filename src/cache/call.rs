//! The typed Rust↔Lua boundary: each script is one [`ScriptCall`] — an input struct whose keys
//! and arguments are computed from it, an outcome enum, and a strict decoder of the reply.
//!
//! Nothing positional leaks out of the implementing module, and a reply that does not have the
//! promised shape is an error naming the script, never a default value (a damaged reply must
//! not become "an order of user 0").

use fred::types::Value;

use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

/// One call of one Lua script, as a value.
pub trait ScriptCall {
    /// What the call decided.
    type Outcome;

    /// The script this call runs.
    fn script(scripts: &Scripts) -> &LuaScript;

    /// Every key the script touches, in the order the script's header lists them.
    fn keys(&self, keys: &Keys) -> Vec<String>;

    /// The script's arguments, in the order its header lists them.
    fn args(&self) -> anyhow::Result<Vec<String>>;

    /// Turns the reply into the outcome; any other shape is an error.
    fn decode(reply: Reply) -> anyhow::Result<Self::Outcome>;
}

/// Runs one typed call against Redis.
pub async fn run<C: ScriptCall>(cache: &Cache, call: &C) -> anyhow::Result<C::Outcome> {
    let script = C::script(&cache.scripts);
    let reply: Value = script
        .call(cache.client(), call.keys(&cache.keys), call.args()?)
        .await?;
    C::decode(Reply::new(script.name(), reply))
}

/// A script's array reply, read strictly: a missing or mistyped element is an error that names
/// the script and the position.
#[derive(Debug)]
pub struct Reply {
    script: &'static str,
    values: Vec<Value>,
}

impl Reply {
    /// Wraps the reply of `script` (a scalar reply reads as an array of one).
    pub fn new(script: &'static str, reply: Value) -> Self {
        let values = match reply {
            Value::Array(values) => values,
            other => vec![other],
        };
        Self { script, values }
    }

    /// The script that answered (for error messages).
    pub fn script(&self) -> &'static str {
        self.script
    }

    /// Element `i` as an integer.
    pub fn int(&self, i: usize) -> anyhow::Result<i64> {
        match self.values.get(i) {
            Some(Value::Integer(n)) => Ok(*n),
            Some(other) => other
                .as_string()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.malformed(i, "an integer")),
            None => Err(self.malformed(i, "an integer")),
        }
    }

    /// Element `i` as text.
    pub fn text(&self, i: usize) -> anyhow::Result<String> {
        match self.values.get(i) {
            Some(Value::Null) | None => Err(self.malformed(i, "text")),
            Some(other) => other.as_string().ok_or_else(|| self.malformed(i, "text")),
        }
    }

    /// Element `i` parsed as one of a vocabulary's words.
    pub fn word<W>(&self, i: usize) -> anyhow::Result<W>
    where
        W: std::str::FromStr,
        W::Err: std::fmt::Display,
    {
        let text = self.text(i)?;
        text.parse()
            .map_err(|e| anyhow::anyhow!("{} reply element {i}: {e}", self.script))
    }

    /// The error for an unknown status code in element 0.
    pub fn unknown_status(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "{} answered an unknown reply {:?}",
            self.script,
            self.values
        )
    }

    fn malformed(&self, i: usize, expected: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{} reply element {i} is not {expected}: {:?}",
            self.script,
            self.values.get(i)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_mistyped_reply_is_an_error_not_a_zero() {
        let reply = Reply::new("x.lua", Value::Array(vec![Value::Integer(1), Value::Null]));
        assert_eq!(reply.int(0).expect("status"), 1);
        assert!(reply.int(1).is_err());
        assert!(reply.text(1).is_err());
        assert!(reply.int(2).is_err());
        let err = reply.int(5).expect_err("missing").to_string();
        assert!(err.contains("x.lua"), "{err}");
    }
}
