//! The automatic trigger: a runtime thread blocked at least `--trigger-blocked`.
//!
//! The recorder does not symbolize, so it cannot tell a runtime thread by its stack the way the
//! analyzer does. It tells blocking by the Tokio task id the programs read with each event (see
//! `crate::tasks`): an off-CPU episode that began inside a task's poll (a task id is set) is a
//! worker blocked by that task; consecutive samples of one thread in one task and one scheduler
//! tick are one poll, on CPU for that long. A worker parked between polls has no task id, so
//! idle time never fires it; `spawn_blocking` closures run outside any task poll and never fire
//! it either (the analyzer's rule, measured on the demo: see docs/FLIGHT.md). Without task ids
//! (no debug info in the target) the trigger cannot fire, and the recorder says so at start.
//! The error: a poll's on-CPU length is measured from sample to sample, so it is short by up
//! to one sampling period (10 ms at 99 Hz). An episode's blocked time leaves out its wait for a
//! CPU after the wakeup (a loaded run queue is not the task's doing).

use std::collections::HashMap;

/// A blocking the trigger saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub tid: u32,
    pub task: u64,
    /// CLOCK_MONOTONIC ns when the blocking began, and how long it lasted (so far).
    pub start_ns: u64,
    pub duration_ns: u64,
    pub on_cpu: bool,
}

/// Watches events for a blocking at least `threshold_ns` long.
pub struct BlockWatch {
    threshold_ns: u64,
    /// Per thread: the poll its last samples were in (task, tick), since when, and whether it
    /// fired already.
    polls: HashMap<u32, (u64, u64, u64, bool)>,
    fired: Option<Blocked>,
}

impl BlockWatch {
    pub fn new(threshold_ns: u64) -> Self {
        BlockWatch {
            threshold_ns,
            polls: HashMap::new(),
            fired: None,
        }
    }

    /// An off-CPU episode that ended at `end_ns`, `duration_ns` long, the last `runnable_ns` of
    /// it waiting for a CPU once woken, in task `task` (0: none). Blocked is the time before the
    /// wakeup: a loaded machine's run queue alone does not fire the trigger.
    pub fn off_cpu(
        &mut self,
        tid: u32,
        end_ns: u64,
        duration_ns: u64,
        runnable_ns: u64,
        task: u64,
    ) {
        // Off CPU, the thread's poll (if any) did not run: a later sample starts a new count.
        self.polls.remove(&tid);
        let blocked_ns = duration_ns.saturating_sub(runnable_ns);
        if task != 0 && blocked_ns >= self.threshold_ns {
            self.fire(Blocked {
                tid,
                task,
                start_ns: end_ns.saturating_sub(duration_ns),
                duration_ns: blocked_ns,
                on_cpu: false,
            });
        }
    }

    /// A cpu-clock sample of thread `tid` at `ts_ns` in task `task` at scheduler tick `tick`
    /// (`hud_format::wire::NO_TICK`: unknown).
    pub fn sample(&mut self, tid: u32, ts_ns: u64, task: u64, tick: u64) {
        if task == 0 || tick == hud_format::wire::NO_TICK {
            self.polls.remove(&tid);
            return;
        }
        let entry = self.polls.entry(tid).or_insert((task, tick, ts_ns, false));
        if (entry.0, entry.1) != (task, tick) {
            *entry = (task, tick, ts_ns, false);
        }
        let (since, fired) = (entry.2, entry.3);
        let duration_ns = ts_ns.saturating_sub(since);
        if !fired && duration_ns >= self.threshold_ns {
            entry.3 = true;
            self.fire(Blocked {
                tid,
                task,
                start_ns: since,
                duration_ns,
                on_cpu: true,
            });
        }
    }

    /// Keeps the first blocking until it is taken: later ones fall in its dump's window.
    fn fire(&mut self, blocked: Blocked) {
        // The first one waits for its dump; later ones within it are part of the same window.
        if self.fired.is_none() {
            self.fired = Some(blocked);
        }
    }

    /// The blocking seen since the last call, if any.
    pub fn take(&mut self) -> Option<Blocked> {
        self.fired.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn an_episode_in_a_task_fires_and_a_parked_worker_does_not() {
        let mut w = BlockWatch::new(300 * MS);
        w.off_cpu(7, 10_000 * MS, 5_000 * MS, 0, 0);
        assert_eq!(w.take(), None, "parked between polls: no task");
        w.off_cpu(7, 20_000 * MS, 200 * MS, 0, 3);
        assert_eq!(w.take(), None, "shorter than the trigger");
        w.off_cpu(7, 25_000 * MS, 400 * MS, 150 * MS, 3);
        assert_eq!(w.take(), None, "blocked 250 ms, waited 150 ms for a CPU");
        w.off_cpu(7, 30_000 * MS, 310 * MS, 0, 3);
        let b = w.take().unwrap();
        assert_eq!(
            (b.tid, b.task, b.start_ns, b.on_cpu),
            (7, 3, 29_690 * MS, false)
        );
    }

    #[test]
    fn samples_of_one_poll_fire_once_and_a_new_tick_starts_over() {
        let mut w = BlockWatch::new(300 * MS);
        for i in 0..20u64 {
            // 10 ms apart, alternating polls: never 300 ms in one.
            w.sample(7, i * 10 * MS, 3, 100 + i);
        }
        assert_eq!(w.take(), None);
        for i in 0..40u64 {
            w.sample(7, 1_000 * MS + i * 10 * MS, 3, 500);
        }
        let b = w.take().unwrap();
        assert_eq!((b.start_ns, b.on_cpu), (1_000 * MS, true));
        assert!(b.duration_ns >= 300 * MS);
        w.sample(7, 1_500 * MS, 3, 500);
        assert_eq!(w.take(), None, "the same poll fires once");
        // An off-CPU episode between samples ends the run.
        w.off_cpu(7, 1_600 * MS, 2 * MS, 0, 0);
        w.sample(7, 1_610 * MS, 3, 500);
        assert_eq!(w.take(), None);
    }
}
