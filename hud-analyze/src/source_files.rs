//! The target's source files on this machine, for showing the lines around a blamed line.
//!
//! Debug info names the paths the target was built from. A capture analyzed elsewhere finds
//! them under `--source-root DIR`: the recorded path is tried under each root with its leading
//! components dropped one by one (`/build/app/src/main.rs` → `DIR/build/app/src/main.rs`,
//! `DIR/app/src/main.rs`, `DIR/src/main.rs`), as a checkout of the same tree anywhere matches.
//! A file that changed after the recording is said, never shown as if it were the build's.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where to look for source files besides their recorded paths.
#[derive(Clone, Debug, Default)]
pub struct SourceFiles {
    pub roots: Vec<PathBuf>,
}

/// Lines around a line of a source file, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Excerpt {
    Found {
        /// The file read.
        path: PathBuf,
        /// (line number, text), the asked line among them when the file has it.
        lines: Vec<(u32, String)>,
        /// Why the lines may not be the build's: modified after the recording, or shorter than
        /// the asked line.
        changed: Option<String>,
    },
    /// Not under its recorded path nor any root.
    Missing { recorded: String },
}

impl SourceFiles {
    /// The file a recorded path names on this machine.
    pub fn find(&self, recorded: &str) -> Option<PathBuf> {
        let path = Path::new(recorded);
        if path.is_file() {
            return Some(path.to_owned());
        }
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(p) => Some(p),
                _ => None,
            })
            .collect();
        for root in &self.roots {
            for skip in 0..parts.len() {
                let candidate: PathBuf = parts[skip..].iter().fold(root.clone(), |p, c| p.join(c));
                if candidate.is_file() {
                    return Some(candidate);
                }
            }
        }
        None
    }

    /// `around` lines either side of `line` of the file recorded as `recorded`, for a capture
    /// that began at `recorded_at` (Unix time, ns; 0: unknown).
    pub fn excerpt(&self, recorded: &str, line: u32, around: u32, recorded_at: u64) -> Excerpt {
        let Some(path) = self.find(recorded) else {
            return Excerpt::Missing {
                recorded: recorded.to_owned(),
            };
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Excerpt::Missing {
                recorded: recorded.to_owned(),
            };
        };
        let count = text.lines().count() as u32;
        let from = line.saturating_sub(around).max(1);
        let to = line.saturating_add(around);
        let lines: Vec<(u32, String)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i as u32 + 1, l.to_owned()))
            .filter(|(n, _)| (from..=to).contains(n))
            .collect();
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let recorded_at =
            (recorded_at > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_nanos(recorded_at));
        let changed = if line > count {
            Some(format!(
                "the file has {count} lines, not {line}: it changed since the build"
            ))
        } else if let (Some(m), Some(r)) = (modified, recorded_at) {
            (m > r).then(|| {
                "modified after the recording: the lines may have moved since the build".to_owned()
            })
        } else {
            None
        };
        Excerpt::Found {
            path,
            lines,
            changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_checkout_is_found_under_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app/src/main.rs");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "fn a() {}\nfn b() {\n    block();\n}\n").unwrap();
        let roots = SourceFiles {
            roots: vec![dir.path().to_owned()],
        };
        assert_eq!(
            roots.find("/build/ci-42/app/src/main.rs").as_deref(),
            Some(file.as_path())
        );
        assert_eq!(
            SourceFiles::default().find("/build/ci-42/app/src/main.rs"),
            None
        );
        // Recorded long after the file was written: the lines are the build's.
        let later = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            + 60_000_000_000;
        match roots.excerpt("/build/ci-42/app/src/main.rs", 3, 1, later) {
            Excerpt::Found { lines, changed, .. } => {
                assert_eq!(
                    lines,
                    vec![
                        (2, "fn b() {".to_owned()),
                        (3, "    block();".to_owned()),
                        (4, "}".to_owned())
                    ]
                );
                assert_eq!(changed, None);
            }
            other => panic!("{other:?}"),
        }
        // Recorded before it was written: it changed since.
        match roots.excerpt("/build/ci-42/app/src/main.rs", 3, 1, 1) {
            Excerpt::Found { changed, .. } => assert!(changed.unwrap().contains("modified")),
            other => panic!("{other:?}"),
        }
        match roots.excerpt("/build/ci-42/app/src/main.rs", 40, 1, later) {
            Excerpt::Found { changed, .. } => assert!(changed.unwrap().contains("4 lines")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            roots.excerpt("/elsewhere/x.rs", 1, 1, later),
            Excerpt::Missing { .. }
        ));
    }
}
