//! The threads validation turns run on, at the lowest CPU priority the OS has (`SCHED_IDLE`
//! on Linux). A validation is throughput work that can take minutes; a push is latency work
//! that takes microseconds. At normal priority two validations keep both cores of a small
//! machine busy and every push waits for the scheduler to hand it a core (BENCHMARKS.md, "Push
//! latency"). At idle priority a validation still gets every cycle nothing else wants, which
//! on a server is almost all of them.
//!
//! The threads are dedicated because an unprivileged thread cannot leave `SCHED_IDLE` again:
//! they come from a runtime of their own, whose blocking pool is sized to the worker pool.
//!
//! Idle priority alone would starve validation on a server busy with other work (a flood of
//! uploads takes every cycle), so a turn here watches its [`CpuShare`] and hands the job back
//! to a normal-priority thread for the rest of its worker's turn when it gets too little.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::side_runtime::SideRuntime;

/// A turn is judged starved after this long with less than [`MIN_CPU_SHARE`] of a core. Long
/// enough to sit out a burst of other uploads, which take both cores for a moment (a shorter
/// window sent turns back to normal priority, into the pushes' way), short enough that a
/// job's own upload does not delay its verdict (a longer one did). The measurements are in
/// BENCHMARKS.md, "Push latency", 2026-12-07, later.
const STARVATION_WINDOW: Duration = Duration::from_millis(300);
const MIN_CPU_SHARE: f64 = 0.25;

pub struct ValidatorThreads {
    runtime: SideRuntime,
}

impl ValidatorThreads {
    pub fn new(threads: usize) -> std::io::Result<ValidatorThreads> {
        // When the OS refuses idle priority the threads run at normal priority; said once.
        let warned = AtomicBool::new(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(threads.max(1))
            .thread_name("validator")
            .on_thread_start(move || {
                if let Err(e) = lower_this_thread_to_idle() {
                    if !warned.swap(true, Ordering::AcqRel) {
                        tracing::warn!(error = %e, "validations run at normal CPU priority");
                    }
                }
            })
            .build()?;
        Ok(ValidatorThreads {
            runtime: SideRuntime::from(runtime),
        })
    }

    /// Run `turn` on a validator thread; awaitable from any runtime.
    pub fn run<T: Send + 'static>(
        &self,
        turn: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.runtime.spawn_blocking(turn)
    }
}

/// How much of a core the calling thread has had since [`CpuShare::start`].
pub struct CpuShare {
    wall: Instant,
    cpu: Option<Duration>,
}

impl CpuShare {
    pub fn start() -> CpuShare {
        CpuShare {
            wall: Instant::now(),
            cpu: this_thread_cpu_time(),
        }
    }

    /// True once the thread has run for STARVATION_WINDOW with too little of a core, that is,
    /// it was waiting for the CPU rather than working. Never where thread CPU time is unknown.
    pub fn starved(&self) -> bool {
        let wall = self.wall.elapsed();
        if wall < STARVATION_WINDOW {
            return false;
        }
        match (self.cpu, this_thread_cpu_time()) {
            (Some(start), Some(now)) => {
                now.saturating_sub(start).as_secs_f64() < MIN_CPU_SHARE * wall.as_secs_f64()
            }
            _ => false,
        }
    }
}

#[cfg(unix)]
fn this_thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return None;
    }
    Some(Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

#[cfg(not(unix))]
fn this_thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(target_os = "linux")]
fn lower_this_thread_to_idle() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Other systems have no idle class a thread can enter portably; normal priority it is.
#[cfg(not(target_os = "linux"))]
fn lower_this_thread_to_idle() -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_kept_from_the_cpu_is_starved_and_a_working_one_is_not() {
        let waiting = CpuShare::start();
        assert!(!waiting.starved(), "too early to tell");
        std::thread::sleep(STARVATION_WINDOW + Duration::from_millis(20));
        assert!(waiting.starved());

        // A thread that works through a window is not starved. On a machine loaded past its
        // cores a busy thread really can get under a quarter of one (and is rightly judged
        // starved), so it gets a few windows to find the CPU in one of them.
        let mut judged = Vec::new();
        for _ in 0..10 {
            let working = CpuShare::start();
            let mut spins = 0u64;
            while working.wall.elapsed() < STARVATION_WINDOW + Duration::from_millis(20) {
                spins = std::hint::black_box(spins + 1);
            }
            if !working.starved() {
                return;
            }
            judged.push(spins);
        }
        panic!("busy in ten windows ({judged:?} spins), yet judged starved in each");
    }

    #[tokio::test]
    async fn turns_run_at_idle_priority_and_the_caller_keeps_its_own() {
        let threads = ValidatorThreads::new(2).unwrap();
        // SAFETY: sched_getscheduler only reads; pid 0 is the calling thread.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let on_validator = threads.run(policy).await.unwrap();
        assert_eq!(on_validator, libc::SCHED_IDLE);
        assert_eq!(
            policy(),
            libc::SCHED_OTHER,
            "the caller's thread is untouched"
        );
        let on_blocking_pool = tokio::task::spawn_blocking(policy).await.unwrap();
        assert_eq!(
            on_blocking_pool,
            libc::SCHED_OTHER,
            "tokio's own pool is untouched"
        );
    }
}
