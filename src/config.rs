//! Configuration: directive names, defaults and parsing as upstream's `config.c`.
//!
//! (Minimal bootstrap version: the full directive table, CONFIG GET/SET/RESETSTAT/REWRITE
//! and the config file parser live here.)

/// `enable-debug-command` and friends: no, yes, local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMode {
    No,
    Yes,
    Local,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub unixsocket: Option<String>,
    pub unixsocketperm: u32,
    pub tcp_backlog: i32,
    pub tcp_keepalive: u32,
    pub maxclients: usize,
    /// Idle seconds before a client is closed; 0 never.
    pub timeout: u64,
    pub databases: usize,
    pub hz: u32,
    pub dynamic_hz: bool,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: usize,
    pub loglevel: String,
    pub logfile: String,
    pub enable_debug_command: EnableMode,
    pub active_expire_effort: u32,
    pub dir: String,
    pub protected_mode: bool,
    pub requirepass: Option<Vec<u8>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            unixsocket: None,
            unixsocketperm: 0,
            tcp_backlog: 511,
            tcp_keepalive: 300,
            maxclients: 10000,
            timeout: 0,
            databases: 16,
            hz: 10,
            dynamic_hz: true,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            loglevel: "notice".into(),
            logfile: String::new(),
            enable_debug_command: EnableMode::No,
            active_expire_effort: 1,
            dir: ".".into(),
            protected_mode: true,
            requirepass: None,
        }
    }
}

impl Config {
    /// Builds the configuration from the command line, as upstream's main(): an optional
    /// config file path first, then `--directive value ...` pairs.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut c = Config::default();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if let Some(name) = a.strip_prefix("--") {
                let v = args.get(i + 1).cloned().unwrap_or_default();
                c.set(name, &v)?;
                i += 2;
            } else {
                i += 1;
            }
        }
        Ok(c)
    }

    fn set(&mut self, name: &str, v: &str) -> Result<(), String> {
        let yes = |v: &str| -> Result<bool, String> {
            match v.to_ascii_lowercase().as_str() {
                "yes" => Ok(true),
                "no" => Ok(false),
                _ => Err("argument must be 'yes' or 'no'".into()),
            }
        };
        match name.to_ascii_lowercase().as_str() {
            "port" => self.port = v.parse().map_err(|_| "Invalid port".to_string())?,
            "bind" => self.bind = v.split_whitespace().map(String::from).collect(),
            "databases" => self.databases = v.parse().map_err(|_| "Invalid databases")?,
            "hz" => self.hz = v.parse().map_err(|_| "Invalid hz")?,
            "save" | "appendonly" => {}
            "dir" => self.dir = v.into(),
            "timeout" => self.timeout = v.parse().map_err(|_| "Invalid timeout")?,
            "maxclients" => self.maxclients = v.parse().map_err(|_| "Invalid maxclients")?,
            "unixsocket" => self.unixsocket = Some(v.into()),
            "protected-mode" => self.protected_mode = yes(v)?,
            "enable-debug-command" => {
                self.enable_debug_command = match v {
                    "yes" => EnableMode::Yes,
                    "local" => EnableMode::Local,
                    _ => EnableMode::No,
                }
            }
            "loglevel" => self.loglevel = v.into(),
            "logfile" => self.logfile = v.into(),
            _ => {
                return Err(format!(
                    "Bad directive or wrong number of arguments: {}",
                    name
                ))
            }
        }
        Ok(())
    }
}

/// Parses the command line: an optional config file path first, then `--directive value`
/// pairs. Returns the configuration and the config file path.
pub fn load_from_args(args: &[String]) -> Result<(Config, Option<String>), String> {
    let (file, rest) = match args.first() {
        Some(a) if !a.starts_with("--") => (Some(a.clone()), &args[1..]),
        _ => (None, args),
    };
    let c = Config::from_args(rest)?;
    Ok((c, file))
}

/// Sets up logging in upstream's format: `pid:role day month year time.ms level message`.
pub fn init_logging(cfg: &Config) {
    use std::io::Write;
    let level = match cfg.loglevel.as_str() {
        "debug" => log::LevelFilter::Trace,
        "verbose" => log::LevelFilter::Debug,
        "notice" => log::LevelFilter::Info,
        "warning" => log::LevelFilter::Warn,
        _ => log::LevelFilter::Info,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    b.format(|buf, record| {
        let mark = match record.level() {
            log::Level::Trace | log::Level::Debug => '.',
            log::Level::Info => '*',
            log::Level::Warn | log::Level::Error => '#',
        };
        writeln!(buf, "{}:M {} {}", std::process::id(), mark, record.args())
    });
    if !cfg.logfile.is_empty() {
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.logfile)
        {
            b.target(env_logger::Target::Pipe(Box::new(f)));
        }
    }
    let _ = b.try_init();
}
