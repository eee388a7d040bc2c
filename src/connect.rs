//! `hookwire connect github`: creates, updates or removes a source's webhook through the
//! GitHub REST API (octocrab), so nobody copies a secret into a settings page by hand.
//!
//! The hook is the one of the repository (`--repo`) or organisation (`--org`) whose payload
//! URL is the source's (`--url`, else its `public_url`). Its secret is a fresh random one,
//! written to the source's `secret_file` (mode 0600, through a temporary file and a rename)
//! and never printed; its events are those the source's filter allows (`filter.events`), else
//! those its templates have a file for, else every event. Running it again changes nothing
//! when the hook already matches.
//!
//! `--rotate` needs the source to list two secret files (`secret_file: [new, previous]`):
//! the current secret moves to the second, the new one goes to the first, and only then is
//! GitHub told, so a hookwire that has (re)read both accepts deliveries signed either way;
//! a ping follows, signed with the new secret. `--remove` deletes the hook; the secret files
//! stay, since config.yaml names them. `--catch-up` asks GitHub to redeliver what failed
//! while hookwire was down ([`catch_up`]).
//!
//! The repository or organisation is `--repo`/`--org`, else the source's `connect:`. The API
//! token comes from `GITHUB_TOKEN`, else `connect.token_env`/`token_file`, else
//! `tools.github`'s; the API from `--api-url`, else `connect.api_url`, else
//! `tools.github.api_url`, else `https://api.github.com`. `connect gitlab` does the same
//! for a GitLab project hook ([`gitlab`]). Exit codes: 0 done (or
//! nothing to do), 1 GitHub or a file failed, 2 a usage or configuration error.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use hookwire_core::config::{self, Config};
use serde_json::{json, Value};

/// Connect and read timeout of one API call.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Hooks listed per page (GitHub's maximum).
const PER_PAGE: usize = 100;
/// The API token's environment variable.
const TOKEN_ENV: &str = "GITHUB_TOKEN";
/// Random bytes in a new secret (hex-encoded in the file).
const SECRET_BYTES: usize = 32;

/// `hookwire connect ...`.
#[derive(Subcommand)]
pub enum ConnectCommand {
    /// Create or update a GitHub repository or organisation webhook for a source (or remove
    /// it); the token comes from GITHUB_TOKEN or `tools.github`.
    Github(GithubArgs),
    /// Create or update a GitLab project webhook for a source (or remove it); the token
    /// comes from GITLAB_TOKEN.
    Gitlab(gitlab::GitlabArgs),
}

/// `hookwire connect github` arguments.
#[derive(Args)]
pub struct GithubArgs {
    /// The configuration file.
    #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
    /// The source (default: the one source of type github).
    #[arg(long)]
    source: Option<String>,
    /// The repository whose webhook it is (default: the source's `connect.repo`).
    #[arg(long, value_name = "OWNER/NAME", conflicts_with = "org")]
    repo: Option<String>,
    /// The organisation whose webhook it is (default: the source's `connect.org`).
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// The payload URL GitHub posts to (default: the source's `public_url`).
    #[arg(long)]
    url: Option<String>,
    /// The GitHub API (GitHub Enterprise: https://HOST/api/v3; default: the source's
    /// `connect.api_url`, else `tools.github.api_url`).
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// Give the hook a new secret, keeping the previous one valid in the second secret file.
    #[arg(long, conflicts_with = "remove")]
    rotate: bool,
    /// Delete the hook with this payload URL.
    #[arg(long)]
    remove: bool,
    /// Ask GitHub to redeliver the hook's failed deliveries since the last one this
    /// config's store accepted (after downtime): each at most once, ever.
    #[arg(long, conflicts_with_all = ["rotate", "remove"])]
    catch_up: bool,
    /// With --catch-up: redeliver at most this many, oldest first.
    #[arg(long, default_value_t = 20, requires = "catch_up", value_parser = clap::value_parser!(u64).range(1..=100))]
    max: u64,
}

/// Why a connect command failed: a usage or configuration error (exit 2), or GitHub or a
/// file (exit 1).
pub(crate) enum Failure {
    Usage(String),
    Failed(String),
}

impl Failure {
    /// The message, whichever kind.
    pub(crate) fn message(self) -> String {
        match self {
            Usage(m) | Failed(m) => m,
        }
    }
}

use Failure::{Failed, Usage};

mod gitlab;

/// Runs `hookwire connect ...`.
pub fn connect(cmd: ConnectCommand) -> ExitCode {
    let (vendor, result) = match cmd {
        ConnectCommand::Github(args) => (
            "github",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failed(format!("cannot start the runtime: {e}")))
                .and_then(|rt| rt.block_on(github(&args))),
        ),
        ConnectCommand::Gitlab(args) => ("gitlab", gitlab::gitlab(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Usage(m)) => {
            eprintln!("hookwire connect {vendor}: {m}");
            ExitCode::from(2)
        }
        Err(Failed(m)) => {
            eprintln!("hookwire connect {vendor}: {m}");
            ExitCode::from(1)
        }
    }
}

/// What connect needs of the source, from config.yaml.
struct Plan {
    source: String,
    /// Its `connect:`, with the token read.
    connect: Option<config::connect::ConnectSettings>,
    url: String,
    /// `secret_file`'s paths, resolved against the config's folder.
    secret_files: Vec<PathBuf>,
    events: Vec<String>,
}

impl Plan {
    /// `--rotate` keeps the previous secret in the second secret file: there must be one.
    fn can_rotate(&self, config: &Path) -> Result<(), Failure> {
        if self.secret_files.len() >= 2 {
            return Ok(());
        }
        Err(Usage(format!(
            "--rotate keeps the previous secret valid in a second file, and source `{}` lists one; \
             write `secret_file: [{}, {}.previous]` in {} and restart hookwire first",
            self.source,
            self.secret_files[0].display(),
            self.secret_files[0].display(),
            config.display()
        )))
    }
}

async fn github(args: &GithubArgs) -> Result<(), Failure> {
    let cfg = config::load_without_secrets(&args.config, &hookwire::registry())
        .map_err(|e| Usage(e.to_string()))?;
    let plan = plan(&cfg, "github", args.source.as_deref(), args.url.as_deref())?;
    if args.rotate {
        plan.can_rotate(&args.config)?;
    }
    let route = match (&args.repo, &args.org) {
        (Some(repo), _) => {
            let (owner, name) = repo
                .split_once('/')
                .filter(|(o, n)| safe_name(o) && safe_name(n))
                .ok_or_else(|| Usage(format!("--repo `{repo}` is not OWNER/NAME")))?;
            format!("/repos/{owner}/{name}/hooks")
        }
        (None, Some(org)) if safe_name(org) => format!("/orgs/{org}/hooks"),
        (None, Some(org)) => return Err(Usage(format!("--org `{org}` is not an organisation name"))),
        (None, None) => match &plan.connect {
            Some(c) => c.hooks_route(),
            None => {
                return Err(Usage(format!(
                "give --repo OWNER/NAME or --org ORG, or set connect.repo (or connect.org) of source `{}`",
                plan.source
            )))
            }
        },
    };
    let configured = plan
        .connect
        .as_ref()
        .map(config::connect::ConnectSettings::owner_name);
    let where_ = args
        .repo
        .clone()
        .or(args.org.clone())
        .or(configured)
        .unwrap_or_default();
    let api_url = args
        .api_url
        .as_deref()
        .or(plan.connect.as_ref().and_then(|c| c.api_url.as_deref()));
    let client = client(&args.config, api_url, plan.connect.as_ref())?;
    let hook = find_hook(&client, &route, &plan.url).await?;

    if args.catch_up {
        let hook = hook.ok_or_else(|| {
            Usage(format!(
                "no hook of {where_} posts to {}: run `hookwire connect github` first",
                plan.url
            ))
        })?;
        return catch_up(
            &client,
            &format!("{route}/{}", hook_id(&hook)?),
            &cfg,
            &plan,
            args.max,
        )
        .await;
    }
    if args.remove {
        match hook {
            Some(h) => {
                let id = hook_id(&h)?;
                let resp = client
                    ._delete(format!("{route}/{id}"), None::<&()>)
                    .await
                    .map_err(describe)?;
                octocrab::map_github_error(resp).await.map_err(describe)?;
                println!("removed hook {id} of {where_} ({})", plan.url);
            }
            None => println!("no hook of {where_} posts to {}: nothing removed", plan.url),
        }
        return Ok(());
    }

    let current = read_secret(&plan.secret_files[0]);
    let body = |secret: &str| {
        json!({
            "name": "web",
            "active": true,
            "events": plan.events,
            "config": {"url": plan.url, "content_type": "json", "insecure_ssl": "0", "secret": secret},
        })
    };
    match (hook, current) {
        (None, _) => {
            let secret = install_secret(&plan.secret_files)?;
            let created: Value = client
                .post(&route, Some(&body(&secret)))
                .await
                .map_err(describe)?;
            println!(
                "created hook {} of {where_}: {} for {}; secret written to {} (0600)",
                created["id"],
                plan.url,
                plan.events.join(", "),
                plan.secret_files[0].display()
            );
        }
        (Some(h), Some(secret)) if !args.rotate => {
            if matches(&h, &plan) {
                println!("hook {} of {where_} is up to date: nothing changed", h["id"]);
                return Ok(());
            }
            // The config's secret is sent again: GitHub drops a hook's secret when an update
            // of its config omits it.
            let id = hook_id(&h)?;
            let _: Value = client
                .patch(format!("{route}/{id}"), Some(&body(&secret)))
                .await
                .map_err(describe)?;
            println!(
                "updated hook {id} of {where_}: {} for {}",
                plan.url,
                plan.events.join(", ")
            );
        }
        (Some(h), _) => {
            // Rotating, or the secret file is gone (GitHub never shows a secret again).
            let id = hook_id(&h)?;
            let secret = install_secret(&plan.secret_files)?;
            let _: Value = client
                .patch(format!("{route}/{id}"), Some(&body(&secret)))
                .await
                .map_err(describe)?;
            let resp = client
                ._post(format!("{route}/{id}/pings"), None::<&()>)
                .await
                .map_err(describe)?;
            octocrab::map_github_error(resp).await.map_err(describe)?;
            println!(
                "new secret for hook {id} of {where_}, written to {} (0600); GitHub confirmed it and sent a ping",
                plan.secret_files[0].display()
            );
            if let Some(previous) = plan.secret_files.get(1) {
                println!(
                    "the previous secret stays valid in {} until the next rotation",
                    previous.display()
                );
            }
        }
    }
    Ok(())
}

/// Redelivers the hook's failed deliveries since the source's last accepted event, each at
/// most once ever (the rules are [`crate::catchup`]'s, and its record is shared with the
/// automatic catch-up of `serve` and `channel`).
async fn catch_up(
    client: &octocrab::Octocrab,
    hook: &str,
    cfg: &Config,
    plan: &Plan,
    max: u64,
) -> Result<(), Failure> {
    let store = crate::run::open_store(cfg).map_err(Usage)?;
    let record = crate::catchup::record_path(cfg, &plan.source);
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let result =
        crate::catchup::redeliver_failed(client, hook, &plan.source, store.clone(), record, max).await;
    store.close(TIMEOUT);
    let report = result.map_err(|(e, asked)| Failed(format!("{e} (after {asked} redelivery requests)")))?;
    for guid in &report.requested {
        println!("asked GitHub to redeliver {guid}");
    }
    let rest = if report.skipped > 0 {
        " (--max reached: run again for the rest)"
    } else {
        ""
    };
    println!(
        "catch-up of `{}`: {} failed since the last accepted delivery ({}), {} redelivery asked{rest}; {} asked before",
        plan.source,
        report.found,
        report.last.as_deref().map_or("none stored".to_owned(), |l| {
            hookwire_core::sanitize::meta_value(l).unwrap_or_default()
        }),
        report.requested.len(),
        report.already,
    );
    Ok(())
}

/// The source, its payload URL, secret files and events.
fn plan(cfg: &Config, vendor: &str, source: Option<&str>, url: Option<&str>) -> Result<Plan, Failure> {
    let of_type: Vec<_> = cfg.sources.iter().filter(|s| s.type_name == vendor).collect();
    let source = match source {
        Some(name) => cfg
            .sources
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Usage(format!("no source named `{name}` in {}", cfg.path.display())))?,
        None => match of_type.as_slice() {
            [one] => *one,
            [] => {
                return Err(Usage(format!(
                    "no source of type github in {}",
                    cfg.path.display()
                )))
            }
            many => {
                let names: Vec<_> = many.iter().map(|s| s.name.as_str()).collect();
                return Err(Usage(format!(
                    "several {vendor} sources ({}): say which with --source",
                    names.join(", ")
                )));
            }
        },
    };
    if source.type_name != vendor {
        return Err(Usage(format!(
            "source `{}` is of type {}; `connect {vendor}` connects {vendor} sources",
            source.name, source.type_name
        )));
    }
    let url = url
        .map(str::to_owned)
        .or_else(|| source.public_url.clone())
        .ok_or_else(|| {
            Usage(format!(
                "no payload URL: give --url https://HOST{} or set public_url of source `{}`",
                source.path, source.name
            ))
        })?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(Usage(format!("the payload URL `{url}` is not http(s)")));
    }
    let secret_files = secret_files(&cfg.path, &source.name)?;
    Ok(Plan {
        connect: connect_section(&cfg.path, &source.name)?,
        source: source.name.clone(),
        url,
        secret_files,
        events: events(cfg, source),
    })
}

/// The source's entry in config.yaml as written.
fn raw_entry(config: &Path, source: &str) -> Result<Option<serde_norway::Value>, Failure> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| Usage(format!("cannot read {}: {e}", config.display())))?;
    let root: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| Usage(format!("{}: {e}", config.display())))?;
    Ok(root["sources"]
        .as_sequence()
        .and_then(|s| s.iter().find(|s| s["name"].as_str() == Some(source)))
        .cloned())
}

/// The source's `connect:`, with its token read unless `GITHUB_TOKEN` overrides it (the
/// config was loaded without secrets).
fn connect_section(config: &Path, source: &str) -> Result<Option<config::connect::ConnectSettings>, Failure> {
    let Some(value) = raw_entry(config, source)?.and_then(|e| e.get("connect").cloned()) else {
        return Ok(None);
    };
    let base = config.parent().unwrap_or(Path::new("."));
    let overridden = std::env::var(TOKEN_ENV).is_ok_and(|t| !t.trim().is_empty());
    config::connect::ConnectSettings::from_yaml(&value, base, !overridden)
        .map(Some)
        .map_err(|(field, m)| Usage(format!("sources: {source}: connect.{field}: {m}")))
}

/// The source's `secret_file` entries, resolved against the config's folder.
fn secret_files(config: &Path, source: &str) -> Result<Vec<PathBuf>, Failure> {
    let entry = raw_entry(config, source)?;
    let entry = entry.as_ref();
    let files: Vec<PathBuf> = match entry.map(|e| &e["secret_file"]) {
        Some(serde_norway::Value::String(one)) => vec![one.into()],
        Some(serde_norway::Value::Sequence(many)) => many
            .iter()
            .filter_map(|v| v.as_str().map(PathBuf::from))
            .collect(),
        _ => Vec::new(),
    };
    if files.is_empty() {
        return Err(Usage(format!(
            "source `{source}` has no secret_file: connect writes the new secret to one; \
             in {} replace its secret_env with `secret_file: secrets/{source}.secret`",
            config.display()
        )));
    }
    let base = config.parent().unwrap_or(Path::new("."));
    Ok(files.into_iter().map(|f| base.join(f)).collect())
}

/// The GitHub events the source uses: its filter's event names, else the events its
/// templates have a file for, else all (`*`).
fn events(cfg: &Config, source: &config::Source) -> Vec<String> {
    let mut out = BTreeSet::new();
    if let Some(f) = &source.filter {
        for e in f.events() {
            // `issues.opened`, `issues.*`, `issues`: the event is the part before the dot.
            let name = e.split('.').next().unwrap_or_default().trim_end_matches('*');
            out.insert(if name.is_empty() {
                "*".to_owned()
            } else {
                name.to_owned()
            });
        }
    }
    if out.is_empty() {
        let prefix = format!("{}/", source.templates);
        let mut add = |file: &str| {
            if let Some(stem) = file.strip_suffix(".hbs") {
                let event = stem.split('.').next().unwrap_or_default();
                if !event.is_empty() && event != "default" {
                    out.insert(event.to_owned());
                }
            }
        };
        for (path, _) in crate::templates::TEMPLATES {
            if let Some(file) = path.strip_prefix(&prefix) {
                add(file);
            }
        }
        if let Some(dir) = &cfg.templates_dir {
            if let Ok(entries) = std::fs::read_dir(dir.join(&source.templates)) {
                for e in entries.flatten() {
                    add(&e.file_name().to_string_lossy());
                }
            }
        }
    }
    if out.is_empty() || out.contains("*") {
        return vec!["*".to_owned()];
    }
    out.into_iter().collect()
}

/// Whether the hook already is what connect would make it (the secret cannot be compared:
/// GitHub never shows it).
fn matches(hook: &Value, plan: &Plan) -> bool {
    let events: BTreeSet<&str> = hook["events"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let wanted: BTreeSet<&str> = plan.events.iter().map(String::as_str).collect();
    events == wanted && hook["active"] == json!(true) && hook["config"]["content_type"] == "json"
}

/// The octocrab client for the API, with the token.
fn client(
    config: &Path,
    api_url: Option<&str>,
    connect: Option<&config::connect::ConnectSettings>,
) -> Result<octocrab::Octocrab, Failure> {
    let tools = config::load_tools(config).map_err(|e| Usage(e.to_string()))?;
    let configured = tools.github.as_ref();
    let own = connect.and_then(|c| c.token.as_ref());
    let token = match std::env::var(TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => match own.or(configured.map(|g| &g.token)) {
            Some(token) => std::str::from_utf8(token.expose())
                .map_err(|_| Usage("the GitHub token is not UTF-8".into()))?
                .trim()
                .to_owned(),
            None => {
                return Err(Usage(format!(
                    "no GitHub token: export {TOKEN_ENV} (a token that may administer the repository's or organisation's hooks), \
                     or set connect.token_env of the source, or configure tools.github"
                )))
            }
        },
    };
    let api = api_url
        .map(str::to_owned)
        .or_else(|| configured.map(|g| g.api_url.clone()))
        .unwrap_or_else(|| "https://api.github.com".to_owned());
    crate::catchup::client(&api, token).map_err(Usage)
}

/// The hook whose payload URL is `url`, looked for page by page.
pub(crate) async fn find_hook(
    client: &octocrab::Octocrab,
    route: &str,
    url: &str,
) -> Result<Option<Value>, Failure> {
    for page in 1.. {
        let hooks: Vec<Value> = client
            .get(route, Some(&[("per_page", PER_PAGE), ("page", page)]))
            .await
            .map_err(describe)?;
        if let Some(h) = hooks.iter().find(|h| h["config"]["url"] == url) {
            return Ok(Some(h.clone()));
        }
        if hooks.len() < PER_PAGE {
            break;
        }
    }
    Ok(None)
}

fn hook_id(hook: &Value) -> Result<u64, Failure> {
    hook["id"]
        .as_u64()
        .ok_or_else(|| Failed("GitHub's hook has no numeric id".into()))
}

/// GitHub's owner, repository and organisation names: no path or query characters.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s != "."
        && s != ".."
}

/// The secret in `path`, if it holds one.
fn read_secret(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A fresh secret written to the first file; with a second file, the first's current secret
/// moves there first, so both stay valid.
fn install_secret(files: &[PathBuf]) -> Result<String, Failure> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Failed(format!("no randomness from the OS: {e}")))?;
    let secret = hex::encode(bytes);
    if let (Some(previous), Some(current)) = (files.get(1), read_secret(&files[0])) {
        write_private(previous, &current)?;
    }
    write_private(&files[0], &secret)?;
    Ok(secret)
}

/// Writes `text` to `path` with mode 0600 through a temporary file and a rename, so a reader
/// sees the old secret or the new one, never a part.
fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| Failed(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// A GitHub failure in words, without the request (its token).
pub(crate) fn describe(e: octocrab::Error) -> Failure {
    Failed(match e {
        octocrab::Error::GitHub { source, .. } => {
            format!("GitHub answered {}: {}", source.status_code, source.message)
        }
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => {
            "GitHub's answer was not the expected JSON".to_owned()
        }
        other => format!("the GitHub request failed: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_change_the_route_are_refused() {
        assert!(safe_name("acme-ops") && safe_name("web.site") && safe_name("a_b"));
        for bad in ["", ".", "..", "a/b", "a?b", "a b", "a%2Fb"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }
}
