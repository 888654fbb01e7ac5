//! CPU pinning and CPU time: the server under test on one core, the load
//! generator on another; the server's CPU time from /proc/<pid>/stat, the
//! generator's from getrusage.

use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The core of the server under test.
pub const SERVER_CORE: usize = 0;
/// The core of the load generator (all its threads).
pub const GENERATOR_CORE: usize = 1;

fn set_affinity(tid: libc::pid_t, core: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity only read and write that set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "cannot pin thread {tid} to core {core}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Checks that both cores exist and that this process may use them.
pub fn check_cores() -> Result<()> {
    // SAFETY: as in `set_affinity`; sched_getaffinity fills the set.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
        }
        set
    };
    for core in [SERVER_CORE, GENERATOR_CORE] {
        // SAFETY: reads the set filled above.
        if !unsafe { libc::CPU_ISSET(core, &set) } {
            bail!("`peers` needs cores {SERVER_CORE} (server) and {GENERATOR_CORE} (load generator); core {core} is not available");
        }
    }
    Ok(())
}

/// Pins every thread of this process to `core` (threads created later
/// inherit their creator's affinity).
pub fn pin_self(core: usize) -> Result<()> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let tid: libc::pid_t = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse().ok())
            .context("task id")?;
        set_affinity(tid, core)?;
    }
    Ok(())
}

/// Runs `spawn` with the calling thread pinned to the server's core, so that
/// the process it starts inherits that core from birth (a tokio runtime
/// then sizes itself to it, as it would under `taskset -c 0`), and pins the
/// thread back to the generator's core; checks the child's affinity.
pub fn spawn_on_server_core<T>(
    spawn: impl FnOnce() -> Result<T>,
    pid: impl Fn(&T) -> u32,
) -> Result<T> {
    set_affinity(0, SERVER_CORE)?;
    let r = spawn();
    set_affinity(0, GENERATOR_CORE)?;
    let t = r?;
    let allowed = status_field(pid(&t), "Cpus_allowed_list")?;
    if allowed != SERVER_CORE.to_string() {
        bail!("the server runs on cores {allowed}, not {SERVER_CORE}");
    }
    Ok(t)
}

/// A field of /proc/<pid>/status.
pub fn status_field(pid: u32, field: &str) -> Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("{field} of process {pid}"))
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of process `pid` (all its threads, the exited ones
/// included), in seconds: from its CPU-time clock (nanoseconds), or else from
/// /proc/<pid>/stat (clock ticks, 10 ms).
pub fn proc_cpu(pid: u32) -> Result<f64> {
    // SAFETY: both calls only write the values passed by pointer.
    unsafe {
        let mut clock: libc::clockid_t = 0;
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut ts) == 0
        {
            return Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9);
        }
    }
    proc_stat_cpu(pid)
}

/// utime + stime of process `pid` from /proc/<pid>/stat, in seconds.
pub fn proc_stat_cpu(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("the server (pid {pid}) is gone"))?;
    // Fields after the command name (in parentheses, which may hold spaces):
    // state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').context("stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    Ok(ticks as f64 / clk_tck())
}

/// User + system CPU time of this process (all its threads), in seconds.
pub fn self_cpu() -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// CPU times and the wall clock at one instant.
#[derive(Clone, Copy)]
pub struct Mark {
    server: f64,
    generator: f64,
    at: Instant,
}

impl Mark {
    pub fn now(server_pid: u32) -> Result<Mark> {
        Ok(Mark {
            server: proc_cpu(server_pid)?,
            generator: self_cpu(),
            at: Instant::now(),
        })
    }
}

/// What one phase cost.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// Server CPU seconds.
    pub server: f64,
    /// Generator CPU seconds.
    pub generator: f64,
    /// Wall seconds.
    pub wall: f64,
}

impl Span {
    pub fn between(a: Mark, b: Mark) -> Span {
        Span {
            server: b.server - a.server,
            generator: b.generator - a.generator,
            wall: (b.at - a.at).as_secs_f64(),
        }
    }

    /// The generator's CPU time over wall time (1.0: its whole core).
    pub fn generator_share(&self) -> f64 {
        self.generator / self.wall
    }

    /// The server's CPU time over wall time.
    pub fn server_share(&self) -> f64 {
        self.server / self.wall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fine clock and /proc agree (to the tick) on a busy process: this
    /// one, spinning until its own CPU clock shows 0.2 s (however long that
    /// takes on a loaded machine: no wall-clock assumption).
    #[test]
    fn cpu_clock_matches_proc_stat() {
        let pid = std::process::id();
        let start = proc_cpu(pid).unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while proc_cpu(pid).unwrap() - start < 0.2 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
            assert!(t.elapsed().as_secs() < 60, "no CPU time for a minute");
        }
        let (fine, coarse) = (proc_cpu(pid).unwrap(), proc_stat_cpu(pid).unwrap());
        assert!(fine >= 0.2, "{fine}");
        assert!((fine - coarse).abs() < 0.05, "{fine} vs {coarse}");
    }
}
