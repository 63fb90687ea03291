//! One typed configuration: defaults < TOML file < `HERO_*` environment < CLI flags.
//!
//! Every setting has one name: `server_name` in the file, `HERO_SERVER_NAME` in the
//! environment, `--server-name` on the command line. Nested sections use `__` in the
//! environment (`HERO_BAYEUX__TIMEOUT_MS`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod suggest;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The host's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one (logged at start-up).
    pub port: u16,
    /// Directory of static files served at `/public` and `/`.
    pub public: PathBuf,
    /// Directory of dynamic plugins (`*.so`).
    pub plugins: PathBuf,
    /// How often the plugin directory is polled for changes, in ms (0: only on SIGHUP).
    pub plugin_reload_ms: u64,
    /// How long one action call (dynamic or static) or dynamic middleware hook may take
    /// before the client gets a timeout error, in ms, unless the action sets its own.
    pub plugin_call_timeout_ms: u64,
    /// Calls in flight into one dynamic plugin library at most; more wait for a slot
    /// (within their deadline).
    pub plugin_max_concurrent_calls: usize,
    /// Plugin libraries loaded at most over the host's life (0: no cap). Each load of a
    /// new or changed file is one, kept until the host exits (libraries are never
    /// unloaded); past the cap, changed files are refused until a restart.
    pub max_plugin_generations: usize,
    /// `serverInformation.serverName` in HTTP responses.
    pub server_name: String,
    /// `serverInformation.apiVersion` in HTTP responses.
    pub api_version: String,
    /// Sent to every new websocket connection.
    pub welcome_message: String,
    /// Actions a websocket connection may have in flight at once.
    pub simultaneous_actions: usize,
    /// Map action errors to HTTP status codes (404, 422, 500, 400) instead of 200.
    pub return_error_codes: bool,
    /// Chat rooms created at start-up, each with its authorization pattern
    /// (`{attribute = value}`; empty means open to everyone).
    pub starting_chat_rooms: Rooms,
    /// Trust `X-Forwarded-For` for the remote IP (only behind a proxy you run).
    pub trust_proxy: bool,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// How long shutdown waits for in-flight requests, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Log line format.
    pub log_format: LogFormat,
    /// PEM certificate chain: with `tls_key`, every route is served over TLS (HTTPS, WSS).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics: bool,
    /// How long a write to a connection may make no progress before the connection is
    /// closed (a peer that stopped reading), in ms; 0: no deadline.
    pub write_timeout_ms: u64,
    /// Params a websocket connection keeps between actions at most (0: no cap).
    pub max_sticky_params: usize,
    /// Their approximate size at most, in bytes (0: no cap).
    pub max_sticky_param_bytes: usize,
    /// Largest public file the websocket `file` verb sends (larger: an error pointing
    /// at its HTTP URL, where it is streamed), in bytes.
    pub max_file_verb_bytes: u64,
    /// Browser origins allowed to call `/api` and `/faye` cross-origin and to open
    /// websockets (`["*"]`: any).
    pub allowed_origins: crate::edge::origin::AllowedOrigins,
    /// How long a connection may take to send a request's headers, counted from when
    /// it opens or its last response ends (so idle keep-alive sockets close too), in ms.
    pub header_timeout_ms: u64,
    /// Open connections at most (0: the file descriptor limit less a reserve).
    pub max_connections: usize,
    /// Open connections per client address at most (0: no cap; not applied with
    /// `trust_proxy`, where every socket comes from the proxy).
    pub max_connections_per_ip: usize,
    /// The Bayeux server at `/faye`.
    pub bayeux: crate::bayeux::BayeuxConfig,
    /// Redis URL (`redis://host:port`): join the cluster of every node on the same Redis
    /// and namespace. Unset: a single node with every backend in memory.
    pub redis: Option<String>,
    /// Clustering settings (used with `redis`).
    pub cluster: crate::cluster::ClusterConfig,
    /// HTTP routes to actions (`[[routes.get]]`, ...), tried before the actions' own;
    /// a bad path stops start-up naming it.
    pub routes: crate::actions::routes::RoutesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 8080,
            public: PathBuf::from("public"),
            plugins: PathBuf::from("plugins"),
            plugin_reload_ms: 250,
            plugin_call_timeout_ms: 30_000,
            plugin_max_concurrent_calls: 64,
            max_plugin_generations: 64,
            server_name: "actionhero API".into(),
            api_version: "0.0.1".into(),
            welcome_message: "Hello! Welcome to the actionhero api".into(),
            simultaneous_actions: 5,
            return_error_codes: false,
            starting_chat_rooms: BTreeMap::from([("defaultRoom".into(), serde_json::Map::new())]),
            trust_proxy: false,
            max_body_bytes: 1024 * 1024,
            shutdown_timeout_ms: 10_000,
            log_format: LogFormat::Text,
            tls_cert: None,
            tls_key: None,
            metrics: true,
            write_timeout_ms: 30_000,
            max_sticky_params: 100,
            max_sticky_param_bytes: 64 * 1024,
            max_file_verb_bytes: 1024 * 1024,
            allowed_origins: crate::edge::origin::AllowedOrigins::default(),
            header_timeout_ms: 30_000,
            max_connections: 0,
            max_connections_per_ip: 0,
            bayeux: crate::bayeux::BayeuxConfig::default(),
            redis: None,
            cluster: crate::cluster::ClusterConfig::default(),
            routes: crate::actions::routes::RoutesConfig::default(),
        }
    }
}

/// Settings given on the command line; only those present override the rest.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "HERO_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// Port to listen on (0: any free port).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Directory of static files.
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<PathBuf>,
    /// Directory of dynamic plugins.
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<PathBuf>,
    /// Plugin directory poll interval in ms (0: reload only on SIGHUP).
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_reload_ms: Option<u64>,
    /// Deadline of one action call or plugin hook in ms (an action may set its own).
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_call_timeout_ms: Option<u64>,
    /// Calls in flight into one dynamic plugin at most.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_max_concurrent_calls: Option<usize>,
    /// Plugin libraries loaded at most over the host's life (0: no cap).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_plugin_generations: Option<usize>,
    /// Server name reported in responses.
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// API version reported in responses.
    #[arg(long, value_name = "VERSION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Welcome message for websocket connections.
    #[arg(long, value_name = "TEXT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub welcome_message: Option<String>,
    /// Actions a websocket connection may have in flight.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simultaneous_actions: Option<usize>,
    /// Answer action errors with HTTP error codes.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_error_codes: Option<bool>,
    /// Chat rooms created at start-up, as JSON: `{"room": {"attribute": "value"}}`.
    #[arg(long, value_name = "JSON", value_parser = parse_rooms)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_chat_rooms: Option<Rooms>,
    /// Trust X-Forwarded-For.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_proxy: Option<bool>,
    /// Largest request body, in bytes.
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Grace period for in-flight requests at shutdown, in milliseconds.
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Log format.
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// PEM certificate chain file: serve HTTPS and WSS (with --tls-key).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key file of --tls-cert.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at /metrics.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<bool>,
    /// Browser origins allowed to call in, comma-separated (`*`: any).
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    /// Largest file the websocket `file` verb sends, in bytes.
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_verb_bytes: Option<u64>,
    /// Time allowed for a request's headers, idle keep-alive included, in ms.
    #[arg(long, value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_ms: Option<u64>,
    /// Open connections at most (0: from the file descriptor limit).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Open connections per client address at most (0: no cap).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Redis URL: join the cluster on this Redis (e.g. redis://127.0.0.1:6379).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

/// Rooms by name, each with its authorization pattern.
pub type Rooms = BTreeMap<String, serde_json::Map<String, serde_json::Value>>;

fn parse_rooms(text: &str) -> Result<Rooms, String> {
    serde_json::from_str(text).map_err(|e| format!("expected {{\"room\": {{}}, ...}}: {e}"))
}

/// The configuration could not be loaded; the message names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` does not exist.
    #[error("config file {0} not found")]
    MissingFile(PathBuf),
    /// A value is malformed or a key unknown.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults, then the file, then `HERO_*` variables, then the flags.
    ///
    /// # Errors
    ///
    /// A missing file, an unknown key or a malformed value, named in the error.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let errors = suggest::review(env_names(), &settings()).errors;
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors.join("; ")));
        }
        Self::figment(flags)?
            .extract()
            .map_err(|errors| ConfigError::Invalid(describe(errors)))
    }

    fn figment(flags: &Flags) -> Result<Figment, ConfigError> {
        // No defaults layer: `#[serde(default)]` fills what no source sets, and a map
        // setting (`starting_chat_rooms`) given by a source is not merged into the
        // default map (which would keep `defaultRoom` for ever).
        let mut figment = Figment::new();
        if let Some(path) = &flags.config {
            if !Path::new(path).is_file() {
                return Err(ConfigError::MissingFile(path.clone()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Ok(figment
            .merge(Self::env())
            .merge(Serialized::defaults(flags)))
    }

    /// `HERO_<KEY>` for every top-level key. Other `HERO_*` variables (`HERO_CONFIG`,
    /// or a test harness's `HERO_BIN`) share the namespace and are not settings, so
    /// they are skipped rather than refused as unknown keys.
    fn env() -> Env {
        let keys: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        };
        Env::prefixed("HERO_")
            .filter(move |name| {
                let top = name.as_str().split("__").next().unwrap_or_default();
                keys.iter().any(|k| k.eq_ignore_ascii_case(top))
            })
            .split("__")
    }
}

/// Warnings about the environment, to log once logging is set up: `HERO_*` variables
/// that are ignored but look like misspelt settings (`HERO_PROT`: did you mean
/// `HERO_PORT`?).
pub fn env_warnings() -> Vec<String> {
    suggest::review(env_names(), &settings()).warnings
}

fn env_names() -> impl Iterator<Item = String> {
    std::env::vars_os().filter_map(|(name, _)| name.into_string().ok())
}

/// Every setting's name: the top-level keys and those of each `[section]`.
fn settings() -> suggest::Settings {
    fn keys(value: serde_json::Result<serde_json::Value>) -> Vec<String> {
        match value {
            Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
    let mut top = keys(serde_json::to_value(Config::default()));
    top.push("config".into()); // HERO_CONFIG, the --config flag
    suggest::Settings {
        top,
        sections: vec![
            (
                "bayeux".into(),
                keys(serde_json::to_value(crate::bayeux::BayeuxConfig::default())),
            ),
            (
                "cluster".into(),
                keys(serde_json::to_value(
                    crate::cluster::ClusterConfig::default(),
                )),
            ),
        ],
    }
}

/// One line per error, each naming its key and where the value came from.
fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" ({} {src})", m.name),
                    None => format!(" ({})", m.name),
                })
                .unwrap_or_default();
            let hint = match &e.kind {
                figment::error::Kind::UnknownField(found, expected) => {
                    suggest::closest(found, expected.iter().copied())
                        .map(|k| format!(" (did you mean `{k}`?)"))
                }
                _ => None,
            }
            .unwrap_or_default();
            if key.is_empty() {
                format!("{}{hint}{source}", e.kind)
            } else {
                format!("key `{key}`: {}{hint}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::load(&Flags::default()).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.simultaneous_actions, 5);
        assert!(c.starting_chat_rooms.contains_key("defaultRoom"));
    }

    #[test]
    fn rooms_come_from_a_json_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            flags: Flags,
        }
        let cli = Cli::try_parse_from([
            "hero",
            "--starting-chat-rooms",
            r#"{"vip": {"role": "admin"}}"#,
        ])
        .unwrap();
        let c = Config::load(&cli.flags).unwrap();
        assert_eq!(c.starting_chat_rooms.len(), 1);
        assert_eq!(c.starting_chat_rooms["vip"]["role"], "admin");
        assert!(Cli::try_parse_from(["hero", "--starting-chat-rooms", "nope"]).is_err());
    }

    #[test]
    fn redis_and_cluster_settings_load_from_the_file_and_the_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            flags: Flags,
        }
        let defaults = Config::load(&Flags::default()).unwrap();
        assert_eq!(defaults.redis, None, "single node unless asked");
        assert_eq!(defaults.cluster.namespace, "hero");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hero.toml");
        std::fs::write(
            &file,
            "redis = \"redis://10.0.0.1:6379\"\n[cluster]\nnamespace = \"shop\"\nnode_timeout_ms = 3000\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let cli = Cli::try_parse_from(["hero", "--config", path]).unwrap();
        let c = Config::load(&cli.flags).unwrap();
        assert_eq!(c.redis.as_deref(), Some("redis://10.0.0.1:6379"));
        assert_eq!(c.cluster.namespace, "shop");
        assert_eq!(c.cluster.node_timeout_ms, 3000);
        assert_eq!(
            c.cluster.heartbeat_ms, 1000,
            "unset keys keep their defaults"
        );
        let cli = Cli::try_parse_from([
            "hero",
            "--config",
            path,
            "--redis",
            "redis://127.0.0.1:7000",
        ])
        .unwrap();
        let c = Config::load(&cli.flags).unwrap();
        assert_eq!(
            c.redis.as_deref(),
            Some("redis://127.0.0.1:7000"),
            "the flag wins"
        );
        std::fs::write(&file, "[cluster]\nnamespac = \"x\"\n").unwrap();
        let err = Config::load(&cli.flags).unwrap_err().to_string();
        assert!(err.contains("namespac"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hero.toml");
        std::fs::write(&file, "prot = 3\n").unwrap();
        let flags = Flags {
            config: Some(file),
            ..Flags::default()
        };
        let err = Config::load(&flags).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
        assert!(err.contains("did you mean `port`?"), "{err}");
    }

    #[test]
    fn hero_variables_like_settings_are_warned_about_and_others_left_alone() {
        let names = [
            "HERO_PROT",
            "HERO_PLUGIN_RELOAD",
            "HERO_BIN",
            "HERO_TESTBED_BIN",
            "HERO_CLIENT",
            "HERO_TARGET",
            "HERO_RUSTC_VERSION",
            "HERO_CONFIG",
            "HERO_TLS_CERT",
            "HERO_BAYEUX__TIMEOUT_MS",
        ];
        let review = suggest::review(names.map(String::from), &settings());
        assert_eq!(review.warnings.len(), 2, "{:?}", review.warnings);
        assert!(review.warnings[0].contains("HERO_PLUGIN_RELOAD_MS"));
        assert!(review.warnings[1].contains("did you mean HERO_PORT"));
        assert!(review.errors.is_empty(), "{:?}", review.errors);
        let review = suggest::review(["HERO_CLUSTER__HEARTBEAT".into()], &settings());
        assert!(
            review.errors[0].contains("HERO_CLUSTER__HEARTBEAT_MS"),
            "{:?}",
            review.errors
        );
    }

    #[test]
    fn bad_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hero.toml");
        std::fs::write(&file, "port = \"eighty\"\n").unwrap();
        let flags = Flags {
            config: Some(file),
            ..Flags::default()
        };
        let err = Config::load(&flags).unwrap_err().to_string();
        assert!(err.contains("key `port`"), "{err}");
    }
}
