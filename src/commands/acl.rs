//! ACL SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT, GENPASS, LOG, DRYRUN, SAVE,
//! LOAD, HELP: the command side of `src/aclsrv.rs` over the `acl` crate.

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::Client;
use crate::server::Server;
use crate::util::eq_ic;

const ADMIN: u64 = f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE;
const ADMIN_CATS: u64 = cat::ADMIN | cat::SLOW | cat::DANGEROUS;
const PLAIN: u64 = f::NOSCRIPT | f::LOADING | f::STALE;
const ALL_NODES: &[&str] = &["request_policy:all_nodes", "response_policy:all_succeeded"];

#[allow(clippy::too_many_arguments)]
const fn sub(
    name: &'static str,
    arity: i32,
    flags: u64,
    cats: u64,
    proc_: super::CommandProc,
    summary: &'static str,
    since: &'static str,
    complexity: &'static str,
) -> CommandDef {
    CommandDef::new(name, arity, flags, cats, proc_).doc("server", since, summary, complexity)
}

pub static COMMANDS: &[CommandDef] = &[CommandDef::new(
    "acl",
    -2,
    0,
    cat::SLOW,
    super::container_proc,
)
.doc(
    "server",
    "6.0.0",
    "A container for Access List Control commands.",
    "Depends on subcommand.",
)
.subs(&[
    sub(
        "cat",
        -2,
        PLAIN,
        cat::SLOW,
        acl_cat_command,
        "Lists the ACL categories, or the commands inside a category.",
        "6.0.0",
        "O(1) since the categories and commands are a fixed set.",
    ),
    sub(
        "deluser",
        -3,
        ADMIN,
        ADMIN_CATS,
        acl_deluser_command,
        "Deletes ACL users, and terminates their connections.",
        "6.0.0",
        "O(1) amortized time considering the typical user.",
    )
    .tips(ALL_NODES),
    sub(
        "dryrun",
        -4,
        ADMIN,
        ADMIN_CATS,
        acl_dryrun_command,
        "Simulates the execution of a command by a user, without executing the command.",
        "7.0.0",
        "O(1).",
    ),
    sub(
        "genpass",
        -2,
        PLAIN,
        cat::SLOW,
        acl_genpass_command,
        "Generates a pseudorandom, secure password that can be used to identify ACL users.",
        "6.0.0",
        "O(1)",
    ),
    sub(
        "getuser",
        3,
        ADMIN,
        ADMIN_CATS,
        acl_getuser_command,
        "Lists the ACL rules of a user.",
        "6.0.0",
        "O(N). Where N is the number of password, command and pattern rules that the user has.",
    ),
    sub(
        "help",
        2,
        f::LOADING | f::STALE,
        cat::SLOW,
        acl_help_command,
        "Returns helpful text about the different subcommands.",
        "6.0.0",
        "O(1)",
    ),
    sub(
        "list",
        2,
        ADMIN,
        ADMIN_CATS,
        acl_list_command,
        "Dumps the effective rules in ACL file format.",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    ),
    sub(
        "load",
        2,
        ADMIN,
        ADMIN_CATS,
        acl_load_command,
        "Reloads the rules from the configured ACL file.",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    ),
    sub(
        "log",
        -2,
        ADMIN,
        ADMIN_CATS,
        acl_log_command,
        "Lists recent security events generated due to ACL rules.",
        "6.0.0",
        "O(N) with N being the number of entries shown.",
    ),
    sub(
        "save",
        2,
        ADMIN,
        ADMIN_CATS,
        acl_save_command,
        "Saves the effective ACL rules in the configured ACL file.",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    )
    .tips(ALL_NODES),
    sub(
        "setuser",
        -3,
        ADMIN,
        ADMIN_CATS,
        acl_setuser_command,
        "Creates and modifies an ACL user and its rules.",
        "6.0.0",
        "O(N). Where N is the number of rules provided.",
    )
    .tips(ALL_NODES),
    sub(
        "users",
        2,
        ADMIN,
        ADMIN_CATS,
        acl_users_command,
        "Lists all ACL users.",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    ),
    sub(
        "whoami",
        2,
        PLAIN,
        cat::SLOW,
        acl_whoami_command,
        "Returns the authenticated username of the current connection.",
        "6.0.0",
        "O(1)",
    ),
])];

const HELP: &[&str] = &[
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <rule> [<rule> ...]",
    "    Create or modify a user with the specified rules.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
];

const ERR_NO_ACLFILE: &str = "ERR This instance is not configured to use an ACL file. You may \
want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you \
have a configuration file set) in order to store users in the configuration.";

fn acl_help_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_help("acl", HELP);
}

fn acl_setuser_command(srv: &mut Server, c: &mut Client) {
    let name = &c.argv[2];
    if !::acl::validate_username(name) {
        c.reply
            .add_error("ERR Usernames can't contain spaces or null characters");
        return;
    }
    let rules: Vec<&[u8]> = c.argv[3..].iter().map(|a| a.as_slice()).collect();
    // The old rules, to close subscribers whose channels get revoked (only when there
    // are subscribers: the clone is not free).
    let old = if srv.pubsub.clients > 0 {
        srv.acl.acl.get_user(name).cloned()
    } else {
        None
    };
    match srv.acl.acl.set_user(name, &rules) {
        Ok(()) => {
            srv.acl.changed();
            if let Some(old) = old {
                crate::aclsrv::kill_revoked_subscribers(srv, Some(c), &old);
            }
            c.reply.add_ok();
        }
        Err(e) => c.reply.add_error(&format!("ERR {}", e)),
    }
}

fn add_selector(c: &mut Client, s: &::acl::SelectorInfo, root: bool) {
    let r = &mut c.reply;
    if !root {
        r.add_map_len(4);
    }
    r.add_bulk(b"commands");
    r.add_bulk(s.commands.as_bytes());
    r.add_bulk(b"keys");
    r.add_bulk(&s.keys);
    r.add_bulk(b"channels");
    r.add_bulk(&s.channels);
    r.add_bulk(b"databases");
    // Upstream shows no database rule as an empty string.
    let dbs = if s.databases == "resetdbs" {
        ""
    } else {
        s.databases.as_str()
    };
    r.add_bulk(dbs.as_bytes());
}

fn acl_getuser_command(srv: &mut Server, c: &mut Client) {
    let Some(u) = srv.acl.acl.get_user(&c.argv[2]) else {
        c.reply.add_null();
        return;
    };
    let info = u.getuser_info();
    let r = &mut c.reply;
    r.add_map_len(7);
    r.add_bulk(b"flags");
    r.add_set_len(info.flags.len());
    for fl in &info.flags {
        r.add_bulk(fl.as_bytes());
    }
    r.add_bulk(b"passwords");
    r.add_array_len(info.passwords.len());
    for p in &info.passwords {
        r.add_bulk(p.as_bytes());
    }
    add_selector(c, &info.root, true);
    c.reply.add_bulk(b"selectors");
    c.reply.add_array_len(info.selectors.len());
    for s in &info.selectors {
        add_selector(c, s, false);
    }
}

fn acl_deluser_command(srv: &mut Server, c: &mut Client) {
    if c.argv[2..].iter().any(|n| n.as_slice() == b"default") {
        c.reply
            .add_error("ERR The 'default' user cannot be removed");
        return;
    }
    let mut deleted = 0;
    let names: Vec<Vec<u8>> = c.argv[2..].to_vec();
    for n in &names {
        if srv.acl.acl.del_user(n) {
            deleted += 1;
            crate::aclsrv::kill_clients_of_user(srv, Some(c), n);
        }
    }
    if deleted > 0 {
        srv.acl.changed();
    }
    c.reply.add_long(deleted);
}

fn acl_list_command(srv: &mut Server, c: &mut Client) {
    let lines: Vec<String> = srv.acl.acl.users().map(::acl::describe_user).collect();
    c.reply.add_bulk_array(&lines);
}

fn acl_users_command(srv: &mut Server, c: &mut Client) {
    let names: Vec<&[u8]> = srv.acl.acl.users().map(|u| u.name()).collect();
    c.reply.add_bulk_array(&names);
}

fn acl_whoami_command(_srv: &mut Server, c: &mut Client) {
    let name = c.user.clone();
    c.reply.add_bulk(name.as_bytes());
}

fn acl_cat_command(srv: &mut Server, c: &mut Client) {
    match c.argv.get(2) {
        None => c.reply.add_bulk_array(&::acl::CATEGORIES),
        Some(name) => match ::acl::category_flag(name) {
            Some(flag) => {
                let cmds = srv.acl.acl.table().commands_in_category(flag);
                c.reply.add_bulk_array(&cmds);
            }
            None => {
                let e = format!(
                    "ERR Unknown category '{}'",
                    crate::reply::sanitize(name, 128)
                );
                c.reply.add_error(&e);
            }
        },
    }
}

fn acl_genpass_command(_srv: &mut Server, c: &mut Client) {
    let bits = match c.argv.get(2) {
        None => 256,
        Some(a) => match crate::util::parse_i64_strict(a) {
            Some(b) if (1..=4096).contains(&b) => b,
            Some(_) => {
                c.reply.add_error(
                    "ERR ACL GENPASS argument must be the number of bits for the output \
                     password, a positive number up to 4096",
                );
                return;
            }
            None => {
                c.reply.add_error(crate::reply::ERR_NOT_INTEGER);
                return;
            }
        },
    };
    let chars = ((bits + 3) / 4) as usize;
    let mut raw = vec![0u8; chars.div_ceil(2)];
    if crate::util::os_random(&mut raw).is_err() {
        c.reply.add_error("ERR Failed to read random bytes");
        return;
    }
    let mut hex: String = raw.iter().map(|b| format!("{:02x}", b)).collect();
    hex.truncate(chars);
    c.reply.add_bulk(hex.as_bytes());
}

fn acl_log_command(srv: &mut Server, c: &mut Client) {
    let mut count = 10usize;
    if let Some(a) = c.argv.get(2) {
        if eq_ic(a, "reset") {
            srv.acl.log.reset();
            c.reply.add_ok();
            return;
        }
        match crate::util::parse_i64_strict(a) {
            Some(n) => count = n.max(0) as usize,
            None => {
                c.reply.add_error(crate::reply::ERR_NOT_INTEGER);
                return;
            }
        }
    }
    let now = srv.mstime;
    let n = count.min(srv.acl.log.len());
    let r = &mut c.reply;
    r.add_array_len(n);
    for e in srv.acl.log.entries().take(n) {
        r.add_map_len(10);
        r.add_bulk(b"count");
        r.add_long(e.count as i64);
        r.add_bulk(b"reason");
        r.add_bulk(e.reason.name().as_bytes());
        r.add_bulk(b"context");
        r.add_bulk(e.context.name().as_bytes());
        r.add_bulk(b"object");
        r.add_bulk(&e.object);
        r.add_bulk(b"username");
        r.add_bulk(&e.username);
        r.add_bulk(b"age-seconds");
        r.add_double(now.saturating_sub(e.ctime_ms) as f64 / 1000.0);
        r.add_bulk(b"client-info");
        r.add_bulk(&e.client_info);
        r.add_bulk(b"entry-id");
        r.add_long(e.entry_id as i64);
        r.add_bulk(b"timestamp-created");
        r.add_long(e.timestamp_created);
        r.add_bulk(b"timestamp-last-updated");
        r.add_long(e.timestamp_last_updated);
    }
}

fn acl_dryrun_command(srv: &mut Server, c: &mut Client) {
    let uname = String::from_utf8_lossy(&c.argv[2]).into_owned();
    if srv.acl.acl.get_user(&c.argv[2]).is_none() {
        let e = format!(
            "ERR User '{}' not found",
            crate::reply::sanitize(&c.argv[2], 128)
        );
        c.reply.add_error(&e);
        return;
    }
    let args = &c.argv[3..];
    let id = match srv.commands.lookup(args) {
        Ok(id) => id,
        Err(_) => {
            let e = format!(
                "ERR Command '{}' not found",
                crate::reply::sanitize(&c.argv[3], 128)
            );
            c.reply.add_error(&e);
            return;
        }
    };
    let arity = srv.commands.commands[id].def.arity;
    let argc = args.len();
    if (arity > 0 && argc as i32 != arity) || (argc as i32) < -arity {
        let e = crate::reply::err_arity(&srv.commands.commands[id].full_name);
        c.reply.add_error(&e);
        return;
    }
    let args = args.to_vec();
    match crate::aclsrv::check_slow(srv, c.db, &uname, id, &args) {
        None => c.reply.add_ok(),
        Some(d) => {
            let msg = match d.reason {
                ::acl::DenyReason::Cmd => format!(
                    "User {} has no permissions to run the '{}' command",
                    uname, srv.commands.commands[id].full_name
                ),
                ::acl::DenyReason::Key => format!(
                    "User {} has no permissions to access the '{}' key",
                    uname,
                    String::from_utf8_lossy(args.get(d.pos).map_or(&[][..], |a| a))
                ),
                ::acl::DenyReason::Channel => format!(
                    "User {} has no permissions to access the '{}' channel",
                    uname,
                    String::from_utf8_lossy(args.get(d.pos).map_or(&[][..], |a| a))
                ),
                ::acl::DenyReason::Db => {
                    let object = if d.pos == 0 {
                        srv.commands.commands[id].full_name.clone()
                    } else {
                        String::from_utf8_lossy(args.get(d.pos).map_or(&[][..], |a| a)).into_owned()
                    };
                    format!(
                        "User {} has no permissions to access database {}",
                        uname, object
                    )
                }
            };
            c.reply.add_bulk(msg.as_bytes());
        }
    }
}

fn acl_save_command(srv: &mut Server, c: &mut Client) {
    if srv.config.aclfile.is_empty() {
        c.reply.add_error(ERR_NO_ACLFILE);
        return;
    }
    match crate::aclsrv::save_file(srv) {
        Ok(()) => c.reply.add_ok(),
        Err(e) => {
            log::warn!("{}", e);
            c.reply
                .add_error("ERR There was an error trying to save the ACLs. Please check the server logs for more information");
        }
    }
}

fn acl_load_command(srv: &mut Server, c: &mut Client) {
    if srv.config.aclfile.is_empty() {
        c.reply.add_error(ERR_NO_ACLFILE);
        return;
    }
    match crate::aclsrv::load_file(srv, Some(c)) {
        Ok(()) => c.reply.add_ok(),
        Err(e) => c.reply.add_error(&format!("ERR {}", e)),
    }
}
