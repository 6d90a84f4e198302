//! The report for people: the `hud.report/2` data, written as text (ANSI emphasis optional).

use std::fmt::Write as _;

use super::schema::{BlockerOut, FrameOut, HotOut, Report, RoleFrom};
use crate::analysis::hotspots::UBIQUITOUS_SHARE;
use crate::model::Role;
use crate::view::file_line;
use crate::view::units::pct;
use crate::view::wording::frame_marker;

/// Frames of a blocker's example stack shown before "… N more frames".
const STACK_FRAMES_SHOWN: usize = 8;

/// Emphasis, or none.
struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

fn frame_location(f: &FrameOut) -> String {
    file_line(f.file.as_deref(), f.line).unwrap_or_default()
}

/// What each role label means, for the legend under the threads table.
fn role_meaning(role: Role) -> &'static str {
    match role {
        Role::Worker => "runs tasks on a multi-thread runtime",
        Role::CurrentThread => "drives a current_thread runtime (block_on)",
        Role::BlockingPool => "spawn_blocking / blocking-pool thread: blocking there is its job",
        Role::Other => "no Tokio runtime frames in its stacks (a plain thread)",
    }
}

/// The text report of `report`; `top` rows per table.
pub fn render(report: &Report, top: usize, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    header(&mut out, report, &st);
    blocking(&mut out, report, &st);
    tasks(&mut out, report, top, &st);
    polls(&mut out, report, top, &st);
    hotspots(&mut out, report, top, &st);
    threads(&mut out, report, &st);
    out
}

/// Where the target ran, when it is not simply this machine's process: its container and its pid
/// in its own PID namespace (the report's ids are the kernel's).
fn container_line(c: &super::schema::CaptureInfo) -> Option<String> {
    let p = c.container.as_ref()?;
    let mut parts = Vec::new();
    if !p.id.is_empty() {
        let short: String = p.id.chars().take(12).collect();
        parts.push(format!("container {} {short}", p.runtime));
    } else if !p.cgroup.is_empty() && p.pid_in_namespace != c.target_pid {
        parts.push(format!("cgroup {}", p.cgroup));
    }
    if p.pid_in_namespace != c.target_pid {
        parts.push(format!(
            "pid {} in its PID namespace (ids here are the host's)",
            p.pid_in_namespace
        ));
    }
    if p.recorder_namespaced {
        parts.push(format!(
            "recorded from inside it (as pid {})",
            p.pid_recorder_saw
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

fn header(out: &mut String, r: &Report, st: &Style) {
    let c = &r.capture;
    let s = &r.summary;
    let _ = writeln!(
        out,
        "{}",
        st.bold(&format!(
            "hud report · pid {} {}",
            c.target_pid, c.executable
        ))
    );
    let _ = writeln!(
        out,
        "recorded {:.2} s on {} (Linux {}), sampling {} Hz",
        c.duration_s, c.host, c.kernel, c.sample_hz
    );
    if let Some(place) = container_line(c) {
        let _ = writeln!(out, "{place}");
    }
    if c.dump.as_ref().is_some_and(|d| d.reason == "segment") {
        let _ = writeln!(
            out,
            "a flight recorder's ring, read whole: from its oldest segment kept on"
        );
    } else if let Some(d) = &c.dump {
        let _ = writeln!(
            out,
            "flight-recorder dump ({}) around {:.2} s{}",
            d.reason,
            d.trigger_s,
            if d.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", d.detail)
            }
        );
    }
    if c.window.from_s > 0.0 || c.window.to_s < c.duration_s {
        let _ = writeln!(
            out,
            "window {:.2} s – {:.2} s of the recording",
            c.window.from_s, c.window.to_s
        );
    }
    for n in &c.notices {
        let _ = writeln!(out, "{}", st.red(&format!("notice: {n}")));
    }
    let roles: Vec<String> = s
        .threads_by_role
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    let coverage = if s.stack_nodes == 0 {
        "n/a (no stacks)".to_string()
    } else {
        format!("{:.0} %", pct(s.symbol_line_coverage))
    };
    let _ = writeln!(
        out,
        "threads: {} · worker utilisation {:.0} % · waiting for a CPU {:.0} % · lost records {} · symbols with file:line {coverage}",
        if roles.is_empty() { "none".into() } else { roles.join(", ") },
        pct(s.worker_utilisation),
        pct(s.runnable_wait_share),
        s.lost_records,
    );
    let sc = &c.stack_copies;
    if sc.table_unwound > 0 || sc.table_stopped > 0 {
        let _ = writeln!(
            out,
            "stacks: {} unwound in the kernel from .eh_frame, {} not (walked{})",
            sc.table_unwound,
            sc.table_stopped,
            if sc.copies > 0 { ", with copies" } else { "" }
        );
    }
    if sc.copies > 0 || sc.over_budget > 0 {
        let kind = if sc.largest_bytes > u64::from(hud_format::wire::LEAF_WINDOW) {
            format!("{} B of stack", sc.largest_bytes)
        } else {
            "leaf windows".to_string()
        };
        let mut line = format!(
            "stacks: {} events unwound from copied {kind}, {} of them gained frames the walk missed",
            sc.events, sc.deepened
        );
        if sc.over_budget > 0 {
            line += &format!(
                " · {} copies over the --stack-budget (their events keep the walk)",
                sc.over_budget
            );
        }
        let _ = writeln!(out, "{line}");
    }
    let status = match s.status {
        crate::analysis::Status::Normal => st.bold("NORMAL"),
        crate::analysis::Status::Caution => st.red("CAUTION"),
        crate::analysis::Status::Unknown => st.bold("UNKNOWN"),
    };
    let _ = writeln!(out, "{status}: {}", s.verdict);
    for w in &r.warnings {
        let _ = writeln!(out, "{}", st.red(&format!("warning: {w}")));
    }
}

fn blocking(out: &mut String, r: &Report, st: &Style) {
    let _ = writeln!(out, "\n{}", st.bold("Blocking the runtime"));
    let runtime = ["worker", "current_thread"]
        .iter()
        .any(|role| r.summary.threads_by_role.contains_key(*role));
    if r.blocking.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            if runtime {
                "nothing blocked a runtime thread past the thresholds"
            } else {
                "no Tokio runtime thread found (by their stacks): nothing to judge"
            }
        );
    }
    let plain = Style { color: false };
    let headlines: Vec<String> = r
        .blocking
        .iter()
        .map(|b| format!("{:?} {}", b.kind, headline(b, &plain)))
        .collect();
    for (i, b) in r.blocking.iter().enumerate() {
        // Two rows that read alike: say what tells this one apart.
        let apart = (0..r.blocking.len())
            .find(|&j| j != i && headlines[j] == headlines[i])
            .and_then(|j| Some((j, first_difference(&b.user_path, &r.blocking[j].user_path)?)));
        blocker(out, i, b, apart, st);
    }
}

/// The outermost frame where user path `a` differs from `b` (both innermost first): what tells
/// two blockers with the same call apart.
fn first_difference<'a>(a: &'a [FrameOut], b: &[FrameOut]) -> Option<&'a FrameOut> {
    let mut b = b.iter().rev();
    a.iter().rev().find(|f| {
        b.next()
            .is_none_or(|g| g.function != f.function || g.line != f.line)
    })
}

fn blocker(
    out: &mut String,
    i: usize,
    b: &BlockerOut,
    apart: Option<(usize, &FrameOut)>,
    st: &Style,
) {
    let _ = writeln!(
        out,
        "{:>3}. {} {}",
        i + 1,
        st.red(&format!("[{}]", b.kind.name())),
        headline(b, st)
    );
    if let Some((j, f)) = apart {
        let _ = writeln!(
            out,
            "       unlike row {}: through {}  {}",
            j + 1,
            f.function,
            frame_location(f)
        );
    }
    if let Some(line) = leaf_line(b) {
        let _ = writeln!(out, "       {line}");
    }
    let is_blame = |f: &FrameOut| f.function == b.function && f.line == b.line;
    if let Some(t) = b.spawned_task.as_ref().filter(|t| !is_blame(t)) {
        let _ = writeln!(out, "       in task {}  {}", t.function, frame_location(t));
    }
    let same = |a: &FrameOut, b: &FrameOut| a.function == b.function && a.line == b.line;
    // The innermost async fn, unless a line above says it: the blame, the task, the call's site.
    if let Some(t) = b.task.as_ref().filter(|t| {
        !is_blame(t)
            && b.spawned_task.as_ref().is_none_or(|s| !same(s, t))
            && b.call.site.as_ref().is_none_or(|s| !same(s, t))
    }) {
        let _ = writeln!(out, "       inside {}  {}", t.function, frame_location(t));
    }
    let _ = writeln!(
        out,
        "       {}× · total {:.1} ms · p50 {:.1} · p99 {:.1} · max {:.1} ms · first at {:.2} s · threads {:?}",
        b.count, b.total_ms, b.p50_ms, b.p99_ms, b.max_ms, b.first_s, b.threads
    );
    if let Some(line) = blocker_tasks(b) {
        let _ = writeln!(out, "       {line}");
    }
    if b.unproven > 0 {
        let _ = writeln!(
            out,
            "       {}",
            st.dim(&format!(
                "{} of {} long polls are upper bounds: without task ids, polls of this code \
                 with no I/O poll of the runtime between them read as one (docs/RECORD.md, \
                 \"Tokio task ids\")",
                b.unproven, b.count
            ))
        );
    }
    let at = file_line(b.advice.file.as_deref(), b.advice.line)
        .map_or(String::new(), |l| format!(" at {l}"));
    let _ = writeln!(
        out,
        "       {} {}",
        st.bold(&format!("fix{at}:")),
        b.advice.text
    );
    for f in b.stack.iter().take(STACK_FRAMES_SHOWN) {
        let line = format!(
            "         {}{} {}",
            frame_marker(f.inlined, f.recovered),
            f.function,
            frame_location(f)
        );
        let _ = writeln!(out, "{}", if f.user { line } else { st.dim(&line) });
    }
    if b.stack.len() > STACK_FRAMES_SHOWN {
        let _ = writeln!(
            out,
            "{}",
            st.dim(&format!(
                "         … {} more frames",
                b.stack.len() - STACK_FRAMES_SHOWN
            ))
        );
    }
}

/// A blocker's headline: the call to move off the runtime and where it is made
/// ([`crate::view::wording::headline`]).
fn headline(b: &BlockerOut, st: &Style) -> String {
    fn part(f: &FrameOut) -> (&str, String) {
        (&f.function, frame_location(f))
    }
    match crate::view::wording::headline(
        b.call.site.as_ref().map(part),
        b.call.callee.as_ref().map(part),
        b.call.in_dependency,
    ) {
        Some(h) => format!(
            "{}{}{}",
            st.bold(&h.main),
            h.rest,
            h.note
                .map_or(String::new(), |n| st.dim(&format!("  ({n})")))
        ),
        None => {
            let loc = file_line(b.file.as_deref(), b.line)
                .unwrap_or_else(|| "(no user frame: lost in code without frame pointers)".into());
            format!("{}  {loc}", st.bold(&b.function))
        }
    }
}

/// Where the time went, when it is not the headline's line
/// ([`crate::view::wording::leaf_sentence`]).
fn leaf_line(b: &BlockerOut) -> Option<String> {
    crate::view::wording::leaf_sentence(
        b.kind,
        b.call.site.as_ref().map(|s| (&*s.function, s.line)),
        b.leaf.as_ref().map(|l| {
            (
                (&*l.frame.function, l.frame.line),
                frame_location(&l.frame),
                l.share,
            )
        }),
        b.syscall.as_deref(),
    )
}

/// Tasks listed per blocker: the few that took most of its time.
const BLOCKER_TASKS_SHOWN: usize = 4;

/// "in task 17 (12×, 60.2 ms)" or "in 6 tasks: 17 (…), …".
fn blocker_tasks(b: &BlockerOut) -> Option<String> {
    let shown: Vec<String> = b
        .tasks
        .iter()
        .take(BLOCKER_TASKS_SHOWN)
        .map(|t| format!("{} ({}×, {:.1} ms)", t.id, t.count, t.total_ms))
        .collect();
    match b.tasks.len() {
        0 => None,
        1 => Some(format!("in task id {}", shown[0])),
        n => Some(format!(
            "in {n} tasks: ids {}{}",
            shown.join(", "),
            if n > BLOCKER_TASKS_SHOWN { ", …" } else { "" }
        )),
    }
}

fn tasks(out: &mut String, r: &Report, top: usize, st: &Style) {
    let t = &r.tasks;
    if !t.available {
        if let Some(why) = &t.source {
            let _ = writeln!(
                out,
                "\n{} {}",
                st.bold("Tasks"),
                st.dim(&format!("(no task ids: {why})"))
            );
        }
        return;
    }
    let _ = writeln!(out, "\n{} ({} seen)", st.bold("Tasks"), t.count);
    if t.count == 0 {
        let _ = writeln!(out, "  no sample or blocker ran in a task");
        return;
    }
    let kinds: Vec<String> = t
        .kinds
        .iter()
        .take(top)
        .map(|k| {
            let name = k.kind.as_ref().map_or("(unknown)", |f| f.function.as_str());
            format!("{} × {name}", k.tasks)
        })
        .collect();
    let _ = writeln!(out, "  kinds: {}", kinds.join(" · "));
    let _ = writeln!(
        out,
        "  {:>8}  {:>9}  {:>10}  {:>10}  {:<17} kind",
        "id", "on CPU", "blocked", "long polls", "seen"
    );
    for task in t.top.iter().take(top) {
        let kind = task
            .kind
            .as_ref()
            .map_or("(unknown)", |f| f.function.as_str());
        let _ = writeln!(
            out,
            "  {:>8}  {:>6.1} ms  {:>7.1} ms  {:>10}  {:>6.2}–{:<6.2} s  {kind}",
            task.id,
            task.on_cpu_ms,
            task.blocked_ms,
            task.long_polls,
            task.first_seen_s,
            task.last_seen_s,
        );
    }
}

/// Exact poll durations (`--poll-probes`), one row per future type.
fn polls(out: &mut String, r: &Report, top: usize, st: &Style) {
    let Some(p) = &r.polls else {
        return;
    };
    let total: u64 = p.futures.iter().map(|f| f.polls).sum();
    let _ = writeln!(
        out,
        "\n{} ({total} polls of {} future types; {} probed by --poll-probes)",
        st.bold("Poll durations"),
        p.futures.len(),
        p.probed_futures
    );
    if let Some(why) = &p.stopped {
        let at = p.stopped_at_s.unwrap_or(0.0);
        let _ = writeln!(out, "  {}", st.red(&format!("at {at:.1} s: {why}")));
        if let Some(took) = p.detach_ms {
            let _ = writeln!(
                out,
                "  {}",
                st.dim(&format!(
                    "detaching the probes took {took:.0} ms, in which the target's threads can \
                     stall (the kernel rewrites their code): blocking then is not judged"
                ))
            );
        }
    }
    let _ = writeln!(
        out,
        "  {:>9}  {:>8}  {:>9}  {:>9}  {:>9}  {:>9}  {:>5}  future",
        "polls", "per s", "p50", "p90", "p99", "max", "long"
    );
    let time = |ms: f64| {
        if ms >= 1.0 {
            format!("{ms:.1} ms")
        } else {
            format!("{:.0} µs", ms * 1000.0)
        }
    };
    for f in p.futures.iter().take(top) {
        let _ = writeln!(
            out,
            "  {:>9}  {:>8.0}  {:>9}  {:>9}  {:>9}  {:>9}  {:>5}  {}{}",
            f.polls,
            f.polls_per_s,
            time(f.p50_ms),
            time(f.p90_ms),
            time(f.p99_ms),
            time(f.max_ms),
            f.long_polls,
            f.name,
            st.dim(&format!(" ({})", f.schedulers.join(", ")))
        );
        if let Some(l) = f.longest.first() {
            let task = l.task.map_or(String::new(), |t| format!(" in task {t}"));
            let _ = writeln!(
                out,
                "  {}",
                st.dim(&format!(
                    "{:>9}  longest: {} at {:.2} s on thread {}{task}",
                    "",
                    time(l.duration_ms),
                    l.start_s,
                    l.tid
                ))
            );
        }
    }
}

fn hotspots(out: &mut String, r: &Report, top: usize, st: &Style) {
    let h = &r.hotspots.overall;
    let _ = writeln!(out, "\n{} ({} samples)", st.bold("CPU hotspots"), h.samples);
    let table = |out: &mut String, title: &str, rows: &[HotOut]| {
        let _ = writeln!(out, "  {title}");
        for row in rows.iter().take(top) {
            let _ = writeln!(
                out,
                "    {:>6.1} % self {:>6.1} % incl  {}",
                row.self_pct, row.inclusive_pct, row.name
            );
        }
    };
    table(out, "by function (self)", &h.by_function);
    table(out, "by function (inclusive)", &h.by_function_inclusive);
    if h.hidden_frames > 0 {
        let _ = writeln!(
            out,
            "{}",
            st.dim(&format!(
                "    ({} library frames hidden: the runtime's plumbing (thread start, catch_unwind, \
                 Tokio's scheduler and harness) and frames in ≥ {:.0} % of their threads' \
                 samples; --all-frames shows them)",
                h.hidden_frames,
                pct(UBIQUITOUS_SHARE)
            ))
        );
    }
    table(out, "by line (self)", &h.by_line);
    for w in &r.hotspots.per_worker {
        let best: Vec<String> = w
            .hotspots
            .by_function
            .iter()
            .take(top.min(3))
            .map(|h| format!("{:.0} % {}", h.self_pct, h.name))
            .collect();
        let _ = writeln!(
            out,
            "  worker {} ({} samples): {}",
            w.tid,
            w.hotspots.samples,
            best.join(" · ")
        );
    }
}

fn threads(out: &mut String, r: &Report, st: &Style) {
    let _ = writeln!(out, "\n{}", st.bold("Threads"));
    let _ = writeln!(
        out,
        "  {:>8}  {:<20} {:<15} {:>8} {:>8} {:>10} {:>12}",
        "tid", "name", "role", "on-CPU", "samples", "blocking", "runnable wait"
    );
    let mut roles_seen: Vec<Role> = Vec::new();
    let mut guessed = false;
    for w in &r.workers {
        let unknown = w.role_from == RoleFrom::Unknown;
        guessed |= unknown;
        if !roles_seen.contains(&w.role) {
            roles_seen.push(w.role);
        }
        let _ = writeln!(
            out,
            "  {:>8}  {:<20} {:<15} {:>7.0}% {:>8} {:>8.1}ms {:>10.1}ms{}",
            w.tid,
            w.name,
            format!("{}{}", w.role.label(), if unknown { "?" } else { "" }),
            pct(w.utilisation),
            w.samples,
            w.blocking_ms,
            w.runnable_wait_ms,
            if w.exited { "  (exited)" } else { "" }
        );
    }
    roles_seen.sort();
    let _ = writeln!(
        out,
        "{}",
        st.dim("  roles, told from each thread's stacks:")
    );
    for role in roles_seen {
        let _ = writeln!(
            out,
            "{}",
            st.dim(&format!("    {:<15} {}", role.label(), role_meaning(role)))
        );
    }
    if guessed {
        let _ = writeln!(
            out,
            "{}",
            st.dim(
                "    ?               no stack of the thread showed its role (none in the capture, or all cut \
                 short before the runtime's frames): the role is a guess"
            )
        );
    }
}
