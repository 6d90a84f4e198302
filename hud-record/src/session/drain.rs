//! The drain loop's work: records from the ring buffer into the capture (switch batches, stacks,
//! stack copies scrubbed, threads), maps rescanned when a stack points outside them, counters.

use std::time::{Duration, Instant};

use hud_format::types::{ThreadEvent, ThreadEventKind, COPY_OF_OFF_CPU, COPY_OF_SAMPLE};
use hud_format::wire::{
    self, kind, PollRecord, RecordHeader, StackCopyHeader, StackRecord, SwitchBatch, ThreadRecord,
};
use hud_format::writer::StackCopyRow;

use super::{write_error, Writer};
use crate::error::Result;
use crate::probes::Probes;
use crate::procfs::{self, MappingTracker};

/// How often /proc/PID/maps is rescanned even when no stack points outside known mappings.
const MAPS_RESCAN_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest gap between two rescans triggered by unknown addresses.
const MAPS_RESCAN_MIN_GAP: Duration = Duration::from_millis(200);
/// How often the kernel's counters are read while recording (and once more at the end): each
/// read is a `bpf` call per counter, and at every 20 ms drain they were most of the recorder's
/// steady CPU (700 calls a second).
const COUNTERS_INTERVAL: Duration = Duration::from_millis(250);

/// Moves records from the ring buffer into the capture.
pub(super) struct Drain {
    pub(super) writer: Writer,
    maps: MappingTracker,
    pid: u32,
    last_rescan: Instant,
    /// When the kernel's counters were last read; `None` before the first read.
    counters_read: Option<Instant>,
    unknown_records: u64,
    /// Records lost so far (kernel counters plus unreadable records), updated each tick.
    pub(super) lost: u64,
    /// The target's code, for scrubbing stack copies (kept up with the rescans).
    code: crate::scrub::CodeRanges,
    /// A stack copy being scrubbed.
    scratch: Vec<u8>,
    /// Leaf windows (`--unwind leaf`, frame pointers): a copy is kept only when it can add a
    /// frame to the walk (below).
    leaf_only: bool,
    /// Per thread, the first return address of its latest walked user stack.
    walked_caller: std::collections::HashMap<u32, u64>,
    /// Per thread, the stack copy taken when it went to sleep in a page fault
    /// ([`wire::COPY_AT_SWITCH_OUT`]), until its episode comes.
    fault_copies: std::collections::HashMap<u32, (StackCopyHeader, Vec<u8>)>,
    /// `--poll-probes`: the probes' histograms, long polls and budget.
    pub(super) polls: Option<crate::polls::PollAccount>,
    /// When the maps were last scanned for the uprobes page (not known yet).
    uprobes_looked_up: Option<Instant>,
    /// The poll probes being detached (over budget), until that is over.
    detaching: Option<crate::probes::Detaching>,
    /// `--flight-recorder`: the ring, its dumps and its trigger.
    pub(super) flight: Option<crate::flight::FlightRecorder>,
}

impl Drain {
    /// A drain for `pid` writing into `writer`; `leaf_only` (copies are leaf windows) keeps a
    /// stack copy only where it can add a frame to the walk.
    pub(super) fn new(writer: Writer, maps: MappingTracker, pid: u32, leaf_only: bool) -> Self {
        let code = maps.code_ranges();
        Drain {
            writer,
            maps,
            pid,
            last_rescan: Instant::now(),
            counters_read: None,
            unknown_records: 0,
            lost: 0,
            code,
            scratch: Vec::new(),
            leaf_only,
            walked_caller: Default::default(),
            fault_copies: Default::default(),
            polls: None,
            uprobes_looked_up: None,
            detaching: None,
            flight: None,
        }
    }

    pub(super) fn drain(&mut self, probes: &mut Probes) -> Result<()> {
        while let Some(item) = probes.ring.next() {
            let bytes: &[u8] = &item;
            match wire::record_kind(bytes) {
                Some(kind::SWITCH_BATCH) => {
                    let Some(batch) = wire::read_record::<SwitchBatch>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    drop(item);
                    self.push_batch(&batch)?;
                }
                Some(kind::SAMPLE) | Some(kind::OFF_CPU) => {
                    let Some(r) = wire::read_record::<StackRecord>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    drop(item);
                    self.push_stack_record(&r)?;
                }
                Some(kind::STACK_COPY) => {
                    let Some(head) = wire::read_record::<StackCopyHeader>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    let start = std::mem::size_of::<StackCopyHeader>();
                    let Some(stack) = bytes.get(start..start + head.len as usize) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    if head.header.flags & wire::COPY_AT_SWITCH_OUT != 0 {
                        // A newer fault of the thread replaces one that ended under the
                        // threshold.
                        self.fault_copies
                            .insert(head.header.tid, (head, stack.to_vec()));
                        continue;
                    }
                    self.scratch.clear();
                    self.scratch.extend_from_slice(stack);
                    drop(item);
                    self.push_stack_copy(&head, true)?;
                }
                Some(kind::THREAD_NEW) | Some(kind::THREAD_EXIT) | Some(kind::THREAD_RENAME) => {
                    let Some(r) = wire::read_record::<ThreadRecord>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    self.push_thread(&r)?;
                }
                Some(kind::POLL) => match (wire::read_record::<PollRecord>(bytes), &mut self.polls)
                {
                    (Some(r), Some(polls)) => polls.push(&r),
                    _ => self.unknown_records += 1,
                },
                _ => self.unknown_records += 1,
            }
        }
        Ok(())
    }

    /// A CPU's switches.
    pub(super) fn push_batch(&mut self, batch: &SwitchBatch) -> Result<()> {
        let cpu = batch.header.cpu;
        for e in batch.valid() {
            let on_cpu = e.state & wire::ENTRY_SWITCH_IN != 0;
            let state = if on_cpu { 0 } else { e.state };
            self.writer
                .push_switch(e.ts_ns, e.tid, cpu, on_cpu, state)
                .map_err(write_error)?;
        }
        Ok(())
    }

    /// A stack copy (its bytes in `scratch`): scrubbed to the words unwinding reads
    /// (scrub.rs), and written unless it is a leaf window that adds nothing.
    /// `compare`: a leaf window may be left out when it adds nothing to the thread's latest
    /// walk (false for a copy taken elsewhere than that walk).
    fn push_stack_copy(&mut self, head: &StackCopyHeader, compare: bool) -> Result<()> {
        if head.poll_returns[0] != 0 {
            // The trampoline page appears at the first probe hit, after the first scan.
            if self.maps.range_of(procfs::UPROBES).is_none()
                && self
                    .uprobes_looked_up
                    .is_none_or(|t| t.elapsed() >= MAPS_RESCAN_MIN_GAP)
            {
                self.uprobes_looked_up = Some(Instant::now());
                self.rescan_maps()?;
            }
            if let Some(uprobes) = self.maps.range_of(procfs::UPROBES) {
                crate::scrub::restore_returns(
                    &mut self.scratch,
                    head.sp,
                    uprobes,
                    &head.poll_returns,
                    &head.poll_return_slots,
                );
            }
        }
        crate::scrub::scrub(&mut self.scratch, head.sp, &self.code);
        let h = head.header;
        // A leaf window whose first return address is the walk's first one adds nothing: the
        // leaf set up its frame and the walk missed no caller.
        if compare
            && self.leaf_only
            && crate::scrub::first_code_address(&self.scratch, &self.code)
                == self.walked_caller.get(&h.tid).copied()
        {
            return Ok(());
        }
        let of = if h.flags == kind::SAMPLE {
            COPY_OF_SAMPLE
        } else {
            COPY_OF_OFF_CPU
        };
        self.writer
            .push_stack_copy(&StackCopyRow {
                ts_ns: h.ts_ns,
                span_ns: head.last_ns.saturating_sub(h.ts_ns),
                tid: h.tid,
                of,
                ip: head.ip,
                sp: head.sp,
                bp: head.bp,
                bytes: &self.scratch,
            })
            .map_err(write_error)
    }

    fn push_stack_record(&mut self, r: &StackRecord) -> Result<()> {
        let user = &r.user[..usize::from(r.user_len).min(wire::MAX_USER_FRAMES)];
        let kernel = &r.kernel[..usize::from(r.kernel_len).min(wire::MAX_KERNEL_FRAMES)];
        // A stack into code we have no mapping for: the target loaded something (dlopen).
        if user.iter().any(|a| !self.maps.covers(*a))
            && self.last_rescan.elapsed() >= MAPS_RESCAN_MIN_GAP
        {
            self.rescan_maps()?;
        }
        let h: RecordHeader = r.header;
        // Only leaf windows are compared with the walk (push_stack_copy).
        if self.leaf_only {
            if let Some(&caller) = user.get(1) {
                self.walked_caller.insert(h.tid, caller);
            } else {
                self.walked_caller.remove(&h.tid);
            }
        }
        let pushed = self.push_event(r, user, kernel);
        if h.kind == kind::OFF_CPU {
            pushed?;
            self.push_fault_copy(r)
        } else {
            pushed
        }
    }

    /// The copy taken when thread `r`'s episode began in a page fault, now that the episode
    /// came: stamped with it, as the copies sent at a system call's return are.
    fn push_fault_copy(&mut self, r: &StackRecord) -> Result<()> {
        let h: RecordHeader = r.header;
        let start = h.ts_ns.saturating_sub(r.duration_ns);
        let Some((head, bytes)) = self.fault_copies.remove(&h.tid) else {
            return Ok(());
        };
        if head.header.ts_ns > start {
            // Taken after this episode began: it is the next one's.
            self.fault_copies.insert(h.tid, (head, bytes));
            return Ok(());
        }
        if head.header.ts_ns != start {
            // A fault shorter than the threshold: no episode came for it.
            return Ok(());
        }
        let mut head = head;
        head.header.flags = kind::OFF_CPU;
        head.header.ts_ns = h.ts_ns;
        head.last_ns = h.ts_ns;
        self.scratch = bytes;
        self.push_stack_copy(&head, false)
    }

    /// A sample or an off-CPU episode, into the writer.
    fn push_event(&mut self, r: &StackRecord, user: &[u64], kernel: &[u64]) -> Result<()> {
        let h: RecordHeader = r.header;
        if let Some(watch) = self.flight.as_mut().and_then(|f| f.watch.as_mut()) {
            if h.kind == kind::SAMPLE {
                watch.sample(h.tid, h.ts_ns, r.task_id, r.tick);
            } else {
                watch.off_cpu(h.tid, h.ts_ns, r.duration_ns, r.runnable_ns, r.task_id);
            }
        }
        // Its task rides in the chunk's order (no time or thread per row).
        if h.kind == kind::SAMPLE {
            self.writer
                .push_sample_in_task(h.ts_ns, h.tid, h.cpu, user, kernel, r.task_id, r.tick)
        } else {
            self.writer.push_off_cpu_in_task(
                h.ts_ns,
                h.tid,
                h.cpu,
                (r.duration_ns, r.runnable_ns, r.state),
                user,
                kernel,
                r.task_id,
            )
        }
        .map_err(write_error)
    }

    fn push_thread(&mut self, r: &ThreadRecord) -> Result<()> {
        let len = r.comm.iter().position(|b| *b == 0).unwrap_or(r.comm.len());
        let name = String::from_utf8_lossy(&r.comm[..len]).into_owned();
        let kind = match r.header.kind {
            kind::THREAD_NEW => ThreadEventKind::New,
            kind::THREAD_EXIT => ThreadEventKind::Exited,
            _ => ThreadEventKind::Renamed,
        };
        self.writer
            .push_thread(ThreadEvent {
                ts_ns: r.header.ts_ns,
                tid: r.header.tid,
                kind,
                name,
            })
            .map_err(write_error)
    }

    fn rescan_maps(&mut self) -> Result<()> {
        self.last_rescan = Instant::now();
        // The target may be exiting: a failed rescan is not an error, the exit is noticed next.
        if let Ok(fresh) = self.maps.rescan(self.pid, procfs::monotonic_ns()) {
            for mapping in fresh {
                self.writer.push_mapping(mapping).map_err(write_error)?;
            }
            self.maps.vdso = None;
            self.code = self.maps.code_ranges();
        }
        Ok(())
    }

    /// Periodic work: counters, rescans, time-based flush.
    pub(super) fn tick(&mut self, probes: &mut Probes) -> Result<()> {
        if self.last_rescan.elapsed() >= MAPS_RESCAN_INTERVAL {
            self.rescan_maps()?;
        }
        if self.polls.as_ref().is_some_and(|p| p.due()) {
            self.write_polls(probes, false)?;
        }
        if self
            .counters_read
            .is_none_or(|at| at.elapsed() >= COUNTERS_INTERVAL)
        {
            self.read_counters(probes);
        }
        self.writer.set_now(procfs::monotonic_ns());
        self.writer.maybe_flush().map_err(write_error)?;
        if let Some(flight) = &mut self.flight {
            flight.tick(&mut self.writer)?;
        }
        Ok(())
    }

    /// The kernel's counters into the capture, and the records lost so far.
    pub(super) fn read_counters(&mut self, probes: &Probes) {
        let mut lost = self.unknown_records;
        for (counter, value) in probes.counters() {
            self.writer.set_counter(counter.name(), value);
            if counter.is_lost_record() {
                lost += value;
            }
        }
        self.lost = lost;
        self.writer
            .set_counter("unknown_record", self.unknown_records);
        self.counters_read = Some(Instant::now());
    }

    /// `--poll-probes`: the histograms so far and the long polls that ended before they were
    /// read, in a polls frame (so the frame's records are polls its histograms count); the
    /// probes stop here when they cost more than their budget, detached on a thread of their
    /// own, and the frame after that is over says when it was (the `last` waits for it).
    pub(super) fn write_polls(&mut self, probes: &mut Probes, last: bool) -> Result<()> {
        if self.polls.is_none() {
            return Ok(());
        }
        let read_at = procfs::monotonic_ns();
        let histograms = probes.poll_histograms();
        // The records of the polls the histograms counted are in the ring buffer by now.
        self.drain(probes)?;
        let Some(polls) = &mut self.polls else {
            return Ok(());
        };
        let (mut frame, stop) = polls.frame(read_at, histograms);
        if let Some(why) = stop {
            self.detaching = probes.stop_poll_probes();
            eprintln!("hud-record: note: --poll-probes: {why}");
        }
        if self
            .detaching
            .as_ref()
            .is_some_and(|d| last || d.is_finished())
        {
            if let Some(detaching) = self.detaching.take() {
                let (from, to) = detaching.wait();
                polls.detached(&mut frame, from, to);
            }
        }
        // The events of the same time are in the capture first.
        self.writer.flush_chunk().map_err(write_error)?;
        self.writer.write_polls(&frame).map_err(write_error)
    }
}
