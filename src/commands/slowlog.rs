//! COMMANDLOG, SLOWLOG (the slow log under its pre-8.1 name) and LATENCY: the command
//! side of src/commandlog.rs and src/latency.rs.

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::Client;
use crate::commandlog::{LARGE_REPLY, LARGE_REQUEST, SLOW};
use crate::server::Server;

const SUB_FLAGS: u64 = f::ADMIN | f::LOADING | f::STALE;
const SUB_CATS: u64 = cat::ADMIN | cat::SLOW | cat::DANGEROUS;
const LAT_FLAGS: u64 = f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE;
const LAT_TIPS: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_nodes",
    "response_policy:special",
];

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("slowlog", -2, 0, cat::SLOW, super::container_proc)
        .doc(
            "server",
            "2.2.12",
            "A container for slow log commands.",
            "Depends on subcommand.",
        )
        .subs(&[
            CommandDef::new("get", -2, SUB_FLAGS, SUB_CATS, slowlog_command)
                .doc(
                    "server",
                    "2.2.12",
                    "Returns the slow log's entries.",
                    "O(N) where N is the number of entries returned",
                )
                .tips(&["request_policy:all_nodes", "nondeterministic_output"]),
            CommandDef::new("help", 2, f::LOADING | f::STALE, cat::SLOW, slowlog_command).doc(
                "server",
                "6.2.0",
                "Shows helpful text about the different subcommands.",
                "O(1)",
            ),
            CommandDef::new("len", 2, SUB_FLAGS, SUB_CATS, slowlog_command)
                .doc(
                    "server",
                    "2.2.12",
                    "Returns the number of entries in the slow log.",
                    "O(1)",
                )
                .tips(&[
                    "request_policy:all_nodes",
                    "response_policy:agg_sum",
                    "nondeterministic_output",
                ]),
            CommandDef::new("reset", 2, SUB_FLAGS, SUB_CATS, slowlog_command)
                .doc(
                    "server",
                    "2.2.12",
                    "Clears all entries from the slow log.",
                    "O(N) where N is the number of entries in the slowlog",
                )
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
        ]),
    CommandDef::new("commandlog", -2, 0, cat::SLOW, super::container_proc)
        .doc(
            "server",
            "8.1.0",
            "A container for command log commands.",
            "Depends on subcommand.",
        )
        .subs(&[
            CommandDef::new("get", 4, SUB_FLAGS, SUB_CATS, commandlog_command)
                .doc(
                    "server",
                    "8.1.0",
                    "Returns the specified command log's entries.",
                    "O(N) where N is the number of entries returned",
                )
                .tips(&["request_policy:all_nodes", "nondeterministic_output"]),
            CommandDef::new("help", 2, f::LOADING | f::STALE, cat::SLOW, commandlog_command).doc(
                "server",
                "8.1.0",
                "Shows helpful text about the different subcommands.",
                "O(1)",
            ),
            CommandDef::new("len", 3, SUB_FLAGS, SUB_CATS, commandlog_command)
                .doc(
                    "server",
                    "8.1.0",
                    "Returns the number of entries in the specified type of command log.",
                    "O(1)",
                )
                .tips(&[
                    "request_policy:all_nodes",
                    "response_policy:agg_sum",
                    "nondeterministic_output",
                ]),
            CommandDef::new("reset", 3, SUB_FLAGS, SUB_CATS, commandlog_command)
                .doc(
                    "server",
                    "8.1.0",
                    "Clears all entries from the specified type of command log.",
                    "O(N) where N is the number of entries in the commandlog",
                )
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
        ]),
    CommandDef::new("latency", -2, 0, cat::SLOW, super::container_proc)
        .doc(
            "server",
            "2.8.13",
            "A container for latency diagnostics commands.",
            "Depends on subcommand.",
        )
        .subs(&[
            CommandDef::new("doctor", 2, LAT_FLAGS, SUB_CATS, latency_command)
                .doc(
                    "server",
                    "2.8.13",
                    "Returns a human-readable latency analysis report.",
                    "O(1)",
                )
                .tips(LAT_TIPS),
            CommandDef::new("graph", 3, LAT_FLAGS, SUB_CATS, latency_command)
                .doc(
                    "server",
                    "2.8.13",
                    "Returns a latency graph for an event.",
                    "O(1)",
                )
                .tips(LAT_TIPS),
            CommandDef::new("help", 2, f::LOADING | f::STALE, cat::SLOW, latency_command).doc(
                "server",
                "2.8.13",
                "Returns helpful text about the different subcommands.",
                "O(1)",
            ),
            CommandDef::new("histogram", -2, LAT_FLAGS, SUB_CATS, latency_command)
                .doc(
                    "server",
                    "7.0.0",
                    "Returns the cumulative distribution of latencies of a subset or all commands.",
                    "O(N) where N is the number of commands with latency information being retrieved.",
                )
                .tips(LAT_TIPS),
            CommandDef::new("history", 3, LAT_FLAGS, SUB_CATS, latency_command)
                .doc(
                    "server",
                    "2.8.13",
                    "Returns timestamp-latency samples for an event.",
                    "O(1)",
                )
                .tips(LAT_TIPS),
            CommandDef::new("latest", 2, LAT_FLAGS, SUB_CATS, latency_command)
                .doc(
                    "server",
                    "2.8.13",
                    "Returns the latest latency samples for all events.",
                    "O(1)",
                )
                .tips(LAT_TIPS),
            CommandDef::new("reset", -2, LAT_FLAGS, SUB_CATS, latency_command)
                .doc(
                    "server",
                    "2.8.13",
                    "Resets the latency data for one or more events.",
                    "O(1)",
                )
                .tips(&["request_policy:all_nodes", "response_policy:agg_sum"]),
        ]),
];

const ERR_COUNT: &str = "ERR count should be greater than or equal to -1";

/// `addReplySubcommandSyntaxError`.
fn subcommand_syntax_error(c: &mut Client) {
    let cmd = String::from_utf8_lossy(&c.argv[0]).to_ascii_uppercase();
    let sub = crate::reply::sanitize(c.argv.get(1).map_or(&[][..], |v| v), 128);
    c.reply.add_error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        sub, cmd
    ));
}

/// A count in [-1, LONG_MAX], -1 meaning all.
fn parse_count(arg: &[u8]) -> Option<usize> {
    match crate::util::parse_i64_strict(arg)? {
        -1 => Some(usize::MAX),
        n if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => None,
    }
}

fn reply_entries(srv: &Server, c: &mut Client, kind: usize, count: usize) {
    let entries = &srv.commandlog.logs[kind].entries;
    let n = count.min(entries.len());
    c.reply.add_array_len(n);
    for e in entries.iter().take(n) {
        c.reply.add_array_len(6);
        c.reply.add_long(e.id);
        c.reply.add_long(e.time);
        c.reply.add_long(e.value);
        c.reply.add_array_len(e.argv.len());
        for a in &e.argv {
            c.reply.add_bulk(a);
        }
        c.reply.add_bulk(e.peer.as_bytes());
        c.reply.add_bulk(&e.name);
    }
}

fn slowlog_command(srv: &mut Server, c: &mut Client) {
    let sub = c.argv[1].to_ascii_lowercase();
    match (sub.as_slice(), c.argv.len()) {
        (b"help", 2) => c.reply.add_help(
            "slowlog",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        ),
        (b"reset", 2) => {
            srv.commandlog.reset(SLOW);
            c.reply.add_ok();
        }
        (b"len", 2) => c.reply.add_long(srv.commandlog.len(SLOW) as i64),
        (b"get", 2 | 3) => {
            let count = match c.argv.get(2) {
                None => 10,
                Some(a) => match parse_count(a) {
                    Some(n) => n,
                    None => return c.reply.add_error(ERR_COUNT),
                },
            };
            reply_entries(srv, c, SLOW, count);
        }
        _ => subcommand_syntax_error(c),
    }
}

fn log_type(arg: &[u8]) -> Option<usize> {
    if arg.eq_ignore_ascii_case(b"slow") {
        Some(SLOW)
    } else if arg.eq_ignore_ascii_case(b"large-request") {
        Some(LARGE_REQUEST)
    } else if arg.eq_ignore_ascii_case(b"large-reply") {
        Some(LARGE_REPLY)
    } else {
        None
    }
}

const ERR_TYPE: &str = "ERR type should be one of the following: slow, large-request, large-reply";

fn commandlog_command(srv: &mut Server, c: &mut Client) {
    let sub = c.argv[1].to_ascii_lowercase();
    match (sub.as_slice(), c.argv.len()) {
        (b"help", 2) => c.reply.add_help(
            "commandlog",
            &[
                "GET <count> <type>",
                "    Return top <count> entries of the specified <type> from the commandlog (-1 mean all).",
                "    Entries are made of:",
                "    id, timestamp,",
                "        time in microseconds for type of slow,",
                "        or size in bytes for type of large-request,",
                "        or size in bytes for type of large-reply",
                "    arguments array, client IP and port,",
                "    client name",
                "LEN <type>",
                "    Return the length of the specified type of commandlog.",
                "RESET <type>",
                "    Reset the specified type of commandlog.",
            ],
        ),
        (b"reset", 3) => match log_type(&c.argv[2]) {
            Some(t) => {
                srv.commandlog.reset(t);
                c.reply.add_ok();
            }
            None => c.reply.add_error(ERR_TYPE),
        },
        (b"len", 3) => match log_type(&c.argv[2]) {
            Some(t) => c.reply.add_long(srv.commandlog.len(t) as i64),
            None => c.reply.add_error(ERR_TYPE),
        },
        (b"get", 4) => {
            let Some(count) = parse_count(&c.argv[2]) else {
                return c.reply.add_error(ERR_COUNT);
            };
            match log_type(&c.argv[3]) {
                Some(t) => reply_entries(srv, c, t, count),
                None => c.reply.add_error(ERR_TYPE),
            }
        }
        _ => subcommand_syntax_error(c),
    }
}

fn latency_command(srv: &mut Server, c: &mut Client) {
    let sub = c.argv[1].to_ascii_lowercase();
    let now = srv.unixtime;
    match (sub.as_slice(), c.argv.len()) {
        (b"history", 3) => match srv.latency.get(&c.argv[2]) {
            None => c.reply.add_array_len(0),
            Some(ts) => {
                let samples: Vec<_> = ts.history().collect();
                c.reply.add_array_len(samples.len());
                for s in samples {
                    c.reply.add_array_len(2);
                    c.reply.add_long(s.time);
                    c.reply.add_long(s.latency as i64);
                }
            }
        },
        (b"latest", 2) => {
            c.reply.add_array_len(srv.latency.events.len());
            for (name, ts) in &srv.latency.events {
                let last = ts.last();
                c.reply.add_array_len(6);
                c.reply.add_bulk(name.as_bytes());
                c.reply.add_long(last.time);
                c.reply.add_long(last.latency as i64);
                c.reply.add_long(ts.max as i64);
                c.reply.add_long(ts.sum as i64);
                c.reply.add_long(ts.cnt as i64);
            }
        }
        (b"graph", 3) => match srv.latency.get(&c.argv[2]) {
            None => {
                let e = format!(
                    "ERR No samples available for event '{}'",
                    crate::reply::sanitize(&c.argv[2], 128)
                );
                c.reply.add_error(&e);
            }
            Some(ts) => {
                let event = String::from_utf8_lossy(&c.argv[2]);
                let now = crate::util::mstime() / 1000;
                let out = crate::latency::graph(&event, ts, now);
                c.reply.add_verbatim(out.as_bytes(), "txt");
            }
        },
        (b"doctor", 2) => {
            let report = srv
                .latency
                .report(srv.config.latency_monitor_threshold, now);
            c.reply.add_verbatim(report.as_bytes(), "txt");
        }
        (b"reset", _) => {
            let n = if c.argv.len() == 2 {
                srv.latency.reset(None)
            } else {
                c.argv[2..]
                    .iter()
                    .map(|e| srv.latency.reset(Some(e)))
                    .sum()
            };
            c.reply.add_long(n as i64);
        }
        (b"histogram", _) => latency_histogram(srv, c),
        (b"help", 2) => c.reply.add_help(
            "latency",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        ),
        _ => subcommand_syntax_error(c),
    }
}

/// LATENCY HISTOGRAM [command ...]: every command with data (subcommands included), or
/// the named ones (a container stands for its subcommands; unknown names are skipped).
fn latency_histogram(srv: &Server, c: &mut Client) {
    let table = &srv.commands;
    let hists = &srv.latency.commands;
    let mut ids: Vec<usize> = Vec::new();
    if c.argv.len() == 2 {
        ids.extend(
            table
                .commands
                .iter()
                .filter(|cmd| !cmd.disabled && hists.get(cmd.id).is_some())
                .map(|cmd| cmd.id),
        );
    } else {
        for name in &c.argv[2..] {
            let Some(id) = table.lookup_full(name) else {
                continue;
            };
            if hists.get(id).is_some() {
                ids.push(id);
            }
            ids.extend(
                table
                    .commands
                    .iter()
                    .filter(|sub| sub.parent == Some(id) && hists.get(sub.id).is_some())
                    .map(|sub| sub.id),
            );
        }
    }
    c.reply.add_map_len(ids.len());
    for id in ids {
        let Some(h) = hists.get(id) else { continue };
        c.reply.add_bulk(table.commands[id].full_name.as_bytes());
        c.reply.add_map_len(2);
        c.reply.add_bulk(b"calls");
        c.reply.add_long(i64::try_from(h.total).unwrap_or(i64::MAX));
        c.reply.add_bulk(b"histogram_usec");
        let cdf = h.cdf();
        c.reply.add_map_len(cdf.len());
        for (usec, n) in cdf {
            c.reply.add_long(i64::try_from(usec).unwrap_or(i64::MAX));
            c.reply.add_long(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}
