//! The command line: global options, one subcommand per verb, and the
//! request each verb sends. clap derives `--help` on every verb, `--version`,
//! `--opt=value`, `--` and the exit code 2 for a mistake from this one
//! definition, and the shell completions from the same.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use session_timeout_proto::{Request, Target};
use timeoutd::config;
use timeoutd::core::time::duration;

const AFTER_HELP: &str = "\
Admin commands need root or the [daemon] admin_group. The socket comes from
--socket, else from [daemon] socket in the config file, else the default.";

/// The heading of the options every verb takes.
const GLOBAL: &str = "Global options";

/// See sessions, end one, revoke a user or group, and tell users their own
/// time left. Talks to timeoutd over its socket.
#[derive(Debug, Parser)]
#[command(name = "timeoutctl", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The daemon's socket (overrides the config file).
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub socket: Option<PathBuf>,
    /// The config file whose [daemon] socket is used.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = config::DEFAULT_PATH,
        help_heading = GLOBAL
    )]
    pub config: PathBuf,
    /// Without a command, the help is printed.
    #[command(subcommand)]
    pub verb: Option<Verb>,
}

/// `--json`: machine-readable output.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Write JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Exactly one of `--user NAME` or `--group NAME`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// A user name.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// A group name: the sessions of its members.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
}

impl TargetArgs {
    pub(crate) fn target(&self) -> Target {
        match (&self.user, &self.group) {
            (Some(u), _) => Target::User(u.clone()),
            // clap's group makes one of the two present.
            (None, g) => Target::Group(g.clone().unwrap_or_default()),
        }
    }
}

/// The shells whose completion scripts `completions` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Every session (admin).
    List(JsonFlag),
    /// One session in detail (admin).
    Show {
        /// The session ID (see timeoutctl list).
        id: u64,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// End a session now (admin).
    Kill {
        /// The session ID (see timeoutctl list).
        id: u64,
        /// Why, for the log (--reason=TEXT if TEXT starts with "-").
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// End every session of a user or group now and refuse new ones until
    /// the TTL or unrevoke (admin).
    Revoke {
        #[command(flatten)]
        target: TargetArgs,
        /// How long the revocation lasts, e.g. 1h or 30m (default: until unrevoke).
        #[arg(long, value_name = "DURATION", value_parser = ttl_secs)]
        ttl: Option<u64>,
        /// Why, for the log and the refused user.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Lift a revocation (admin).
    Unrevoke {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Active revocations (admin).
    Revocations(JsonFlag),
    /// End every session of a user or group, and every login of theirs
    /// until then, at an absolute time, with warnings; or --clear it (admin).
    Deadline(crate::deadlines::DeadlineArgs),
    /// Deadlines in force (admin).
    Deadlines(JsonFlag),
    /// Reload the config; says whether it was accepted (admin).
    Reload,
    /// Your own sessions and the time left on each.
    Status(JsonFlag),
    /// Check accounts through the PAM account stack now and end the
    /// sessions of invalid ones; prints each user's result (admin).
    Revalidate {
        /// Only this user (default: every user with a live session).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Lifetimes, idle gaps, outliers and what-if limits from timeoutd's
    /// session summaries in log files (needs no daemon).
    Report(Box<crate::report::ReportArgs>),
    /// Print a shell completion script (for packagers; needs no daemon).
    Completions {
        /// The shell the script is for.
        shell: Shell,
    },
}

/// `--ttl`: a human duration (a bare number is refused), in seconds.
fn ttl_secs(text: &str) -> Result<u64, String> {
    duration::parse(text).map(|d| d.as_secs())
}

impl Verb {
    /// The request this verb sends, or `None` for a verb answered locally.
    pub fn request(&self) -> Option<Request> {
        Some(match self {
            Self::List(_) => Request::List,
            Self::Show { id, .. } => Request::Show { id: *id },
            Self::Kill { id, reason } => Request::Kill {
                id: *id,
                reason: reason.clone().unwrap_or_default(),
            },
            Self::Revoke {
                target,
                ttl,
                reason,
            } => Request::Revoke {
                target: target.target(),
                ttl_secs: ttl.unwrap_or(0),
                reason: reason.clone().unwrap_or_default(),
            },
            Self::Unrevoke { target } => Request::Unrevoke {
                target: target.target(),
            },
            Self::Revocations(_) => Request::Revocations,
            Self::Deadline(d) => d.request(crate::report::read::time::now()),
            Self::Deadlines(_) => Request::Deadlines,
            Self::Reload => Request::Reload,
            Self::Status(_) => Request::Status,
            Self::Revalidate { user } => Request::Revalidate {
                user: user.clone().unwrap_or_default(),
            },
            Self::Completions { .. } | Self::Report(_) => return None,
        })
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        match self {
            Self::List(j)
            | Self::Revocations(j)
            | Self::Deadlines(j)
            | Self::Status(j)
            | Self::Show { json: j, .. } => j.json,
            _ => false,
        }
    }
}

/// Parses `args` (the program name first).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
    };
    let mut out = Vec::new();
    clap_complete::generate(generator, &mut Cli::command(), "timeoutctl", &mut out);
    out
}

/// The top-level help, as `timeoutctl` without a command prints it.
pub fn help() -> String {
    use clap::CommandFactory;
    Cli::command().render_help().to_string()
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
