//! Man pages and shell completions made from a binary's own clap definitions, so they never
//! drift from `--help`. Both binaries take a hidden `--generate KIND` (see [`FLAG`]) that prints
//! one of them; `cargo xtask dist` collects them into the release archive.

use std::io::Write;

/// The hidden first argument that asks a binary for a man page or completions.
pub const FLAG: &str = "--generate";

/// What `--generate` accepts: `man`, `man:SUBCOMMAND`, or a shell.
pub const KINDS: &str = "man, man:SUBCOMMAND, bash, zsh, fish";

/// Writes `kind` for `cmd`: its man page (`man`), the man page of one subcommand
/// (`man:report`, named `BIN-report` as git names its pages), or a completion script for
/// `bash`, `zsh` or `fish`.
pub fn write(mut cmd: clap::Command, kind: &str, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let bin = cmd.get_name().to_owned();
    if kind == "man" {
        return clap_mangen::Man::new(cmd).render(out).map_err(io);
    }
    if let Some(sub) = kind.strip_prefix("man:") {
        // Built first so the subcommand's usage line carries the binary's name.
        cmd.build();
        let page = cmd
            .find_subcommand(sub)
            .ok_or_else(|| format!("{bin} has no subcommand `{sub}`"))?
            .clone()
            .name(format!("{bin}-{sub}"))
            .version(cmd.get_version().unwrap_or_default().to_owned());
        return clap_mangen::Man::new(page).render(out).map_err(io);
    }
    let shell = match kind {
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        other => return Err(format!("cannot generate `{other}`: one of {KINDS}")),
    };
    clap_complete::generate(shell, &mut cmd, bin, out);
    Ok(())
}

/// The subcommands that get a page of their own (hidden ones and `help` do not).
pub fn subcommands(cmd: &clap::Command) -> Vec<String> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_owned())
        .collect()
}

/// For a binary's `main`: when the first argument is [`FLAG`], writes what was asked for to
/// stdout and returns the exit status; otherwise `None`, and the binary parses as usual.
pub fn handle_flag(cmd: impl FnOnce() -> clap::Command) -> Option<std::process::ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != FLAG {
        return None;
    }
    let kind = args.next().and_then(|k| k.into_string().ok());
    let result = match kind.as_deref() {
        Some(kind) => write(cmd(), kind, &mut std::io::stdout().lock()),
        None => Err(format!("{FLAG} needs one of {KINDS}")),
    };
    Some(match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> clap::Command {
        clap::Command::new("toy")
            .about("A toy")
            .arg(clap::Arg::new("verbose").long("verbose").help("Say more"))
            .subcommand(clap::Command::new("report").about("Report things"))
            .subcommand(clap::Command::new("secret").hide(true))
    }

    fn text(kind: &str) -> Result<String, String> {
        let mut out = Vec::new();
        write(toy(), kind, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn man_pages_for_the_binary_and_each_subcommand() {
        let page = text("man").unwrap();
        assert!(page.contains(".TH toy 1"), "{page}");
        assert!(page.contains("verbose"), "{page}");
        let sub = text("man:report").unwrap();
        assert!(sub.contains(".TH toy-report 1"), "{sub}");
        assert!(sub.contains("toy report"), "usage names the binary: {sub}");
        assert!(sub.contains("Report things"), "{sub}");
        assert_eq!(subcommands(&toy()), ["report"]);
        assert!(text("man:nope")
            .unwrap_err()
            .contains("no subcommand `nope`"));
    }

    #[test]
    fn completions_for_three_shells_name_the_options() {
        for shell in ["bash", "zsh", "fish"] {
            let script = text(shell).unwrap();
            assert!(
                script.contains("--verbose") || script.contains("-l verbose"),
                "{script}"
            );
            assert!(script.contains("report"), "{shell}: {script}");
        }
        assert!(text("powershell").unwrap_err().contains("one of man"));
    }
}
