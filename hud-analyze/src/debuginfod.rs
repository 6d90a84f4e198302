//! Objects fetched by build-id from debuginfod servers (`DEBUGINFOD_URLS`, the variable elfutils,
//! gdb and perf read): an executable or library nobody kept beside the capture, and the debug
//! info a distribution serves for its packages.
//!
//! Fetched files live in a cache (`DEBUGINFOD_CACHE_PATH`, else `$XDG_CACHE_HOME/hud/debuginfod`,
//! else `~/.cache/hud/debuginfod`) as `BUILDID/executable` and `BUILDID/debuginfo`, the layout
//! elfutils uses. A download goes to a temporary file and is renamed into place only when its
//! build-id is the one asked for, so concurrent runs and cut downloads leave no wrong entry; an
//! entry whose build-id is wrong is removed and fetched again. Every request has a deadline
//! (`DEBUGINFOD_TIMEOUT` seconds, 15 by default); a server that does not answer in time, or not
//! at all, is not asked again in this run and is named in the report's warnings: never a hang.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hud_format::elf::build_id_of;

/// What is fetched for a build-id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// The object itself (symbols, `.eh_frame`).
    Executable,
    /// Its separate debug file (DWARF).
    Debuginfo,
}

impl Artifact {
    fn name(self) -> &'static str {
        match self {
            Artifact::Executable => "executable",
            Artifact::Debuginfo => "debuginfo",
        }
    }
}

/// The largest file fetched (a debug file of a large C++ library is a few hundred MiB).
const MOST_BYTES: u64 = 4 << 30;

/// The servers to ask and where their answers are kept.
#[derive(Debug)]
pub struct Debuginfod {
    urls: Vec<String>,
    cache: PathBuf,
    timeout: Duration,
    /// One HTTP agent for every request (its connections are kept between them).
    agent: ureq::Agent,
    /// Servers that failed (timeout, refused): not asked again.
    dead: Mutex<HashSet<String>>,
    /// What users should know (a server down, a file fetched), once each.
    notes: Mutex<Vec<String>>,
}

impl Debuginfod {
    /// From the environment, as elfutils reads it; `None` without `DEBUGINFOD_URLS`.
    pub fn from_env() -> Option<Self> {
        let urls: Vec<String> = std::env::var("DEBUGINFOD_URLS")
            .ok()?
            .split_whitespace()
            .map(|u| u.trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return None;
        }
        let cache = std::env::var_os("DEBUGINFOD_CACHE_PATH")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hud/debuginfod"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hud/debuginfod"))
            })?;
        let timeout = std::env::var("DEBUGINFOD_TIMEOUT")
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map_or(Duration::from_secs(15), Duration::from_secs);
        Some(Self::new(urls, cache, timeout))
    }

    pub fn new(urls: Vec<String>, cache: PathBuf, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Debuginfod {
            urls,
            cache,
            timeout,
            agent,
            dead: Mutex::default(),
            notes: Mutex::default(),
        }
    }

    /// What happened worth a warning since the last call.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn note(&self, text: String) {
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }

    /// The cached or fetched file of `artifact` for `build_id`, or `None`.
    pub fn fetch(&self, build_id: &[u8], artifact: Artifact) -> Option<PathBuf> {
        if build_id.len() < 2 {
            return None;
        }
        let id = crate::objects::hex(build_id);
        let dir = self.cache.join(&id);
        let path = dir.join(artifact.name());
        if path.is_file() {
            if has_build_id(&path, build_id) {
                return Some(path);
            }
            // A wrong or damaged entry (another tool's, a disk fault): fetched again.
            let _ = std::fs::remove_file(&path);
        }
        for url in &self.urls {
            if self
                .dead
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(url)
            {
                continue;
            }
            match self.download(url, &id, artifact, &dir, build_id) {
                Ok(Some(found)) => {
                    self.note(format!(
                        "fetched the {} of build-id {id} from {url}",
                        artifact.name()
                    ));
                    return Some(found);
                }
                Ok(None) => {}
                Err(why) => {
                    self.note(format!(
                        "debuginfod server {url}: {why}; not asked again in this run"
                    ));
                    self.dead
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(url.clone());
                }
            }
        }
        None
    }

    /// `Ok(None)`: the server has no such file (404) or sent a wrong one; `Err`: the server
    /// failed (not reached, too slow, an error status).
    fn download(
        &self,
        url: &str,
        id: &str,
        artifact: Artifact,
        dir: &Path,
        build_id: &[u8],
    ) -> Result<Option<PathBuf>, String> {
        let address = format!("{url}/buildid/{id}/{}", artifact.name());
        let response = self.agent.get(&address).call().map_err(|e| match e {
            ureq::Error::Timeout(_) => format!("no answer within {} s", self.timeout.as_secs()),
            other => other.to_string(),
        })?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(format!("HTTP {status} for {address}")),
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("cache {}: {e}", dir.display()))?;
        let temporary = dir.join(format!(
            ".{}.{}.partial",
            artifact.name(),
            std::process::id()
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&temporary)?;
            let mut body = response.into_body();
            let mut reader = body.as_reader().take(MOST_BYTES);
            std::io::copy(&mut reader, &mut file)?;
            file.flush()
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temporary);
            return Err(format!("reading {address}: {e}"));
        }
        if !has_build_id(&temporary, build_id) {
            let _ = std::fs::remove_file(&temporary);
            self.note(format!(
                "{address} sent a file of another build-id: left out"
            ));
            return Ok(None);
        }
        let path = dir.join(artifact.name());
        std::fs::rename(&temporary, &path).map_err(|e| format!("cache {}: {e}", path.display()))?;
        Ok(Some(path))
    }
}

fn has_build_id(path: &Path, build_id: &[u8]) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: read-only map of a file we only parse.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return false;
    };
    build_id_of(&map).is_some_and(|id| id == build_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_is_not_there_is_named_and_not_asked_again() {
        // A port nothing listens on: refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let cache = tempfile::tempdir().unwrap();
        let d = Debuginfod::new(
            vec![format!("http://127.0.0.1:{port}")],
            cache.path().to_path_buf(),
            Duration::from_secs(2),
        );
        assert_eq!(d.fetch(&[0xab; 20], Artifact::Executable), None);
        let notes = d.take_notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("not asked again"), "{notes:?}");
        assert_eq!(d.fetch(&[0xcd; 20], Artifact::Executable), None);
        assert!(d.take_notes().is_empty(), "asked once only");
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        // Accepts and says nothing.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _hold = std::thread::spawn(move || {
            let kept: Vec<_> = listener.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(5));
            drop(kept);
        });
        let cache = tempfile::tempdir().unwrap();
        let d = Debuginfod::new(
            vec![format!("http://127.0.0.1:{port}")],
            cache.path().to_path_buf(),
            Duration::from_secs(1),
        );
        let started = std::time::Instant::now();
        assert_eq!(d.fetch(&[0xab; 20], Artifact::Debuginfo), None);
        assert!(started.elapsed() < Duration::from_secs(4));
        let notes = d.take_notes();
        assert!(notes[0].contains("no answer within 1 s"), "{notes:?}");
    }
}
