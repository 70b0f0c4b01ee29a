//! String commands, as upstream's `t_string.c`.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::db;
use crate::object::{Value, ValueRef};
use crate::reply;
use crate::server::Server;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("get", 2, f::READONLY | f::FAST, cat::READ | cat::STRING | cat::FAST, get_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("string", "1.0.0", "Returns the string value of a key.", "O(1)"),
    CommandDef::new("set", -3, f::WRITE | f::DENYOOM, cat::WRITE | cat::STRING | cat::SLOW, set_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::UPDATE | k::VARIABLE_FLAGS, 1, 0, 1)])
        .doc(
            "string",
            "1.0.0",
            "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
            "O(1)",
        ),
];

/// Adds the string value to the reply, or WRONGTYPE.
pub fn add_reply_string_value(c: &mut Client, v: Option<ValueRef<'_>>) -> bool {
    match v {
        None => {
            c.reply.add_null();
            true
        }
        Some(ValueRef::Int(n)) => {
            c.reply.add_bulk_i64(n);
            true
        }
        Some(ValueRef::Str(b)) => {
            c.reply.add_bulk(b);
            true
        }
    }
}

fn get_command(srv: &mut Server, c: &mut Client) {
    let v = db::lookup_key_read(srv, c.db, &c.argv[1]);
    if v.is_some_and(|v| v.obj_type() != crate::object::ObjType::String) {
        c.reply.add_error(reply::ERR_WRONGTYPE);
        return;
    }
    add_reply_string_value(c, v);
}

fn set_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len() != 3 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let val = Value::from_bytes(&c.argv[2]);
    db::set_key(srv, c.db, &c.argv[1], val, false);
    srv.dirty += 1;
    c.reply.add_ok();
}
