//! The monotonic clock the core's timers run on: SysTick at 1 kHz.
//!
//! SysTick counts the core clock (12.5 MHz on QEMU's `lm3s6965evb`, see
//! [`CORE_HZ`]) and interrupts every millisecond; the handler counts
//! milliseconds. [`Clock::now`] extends that 32-bit count to the core's 64-bit
//! [`Instant`]. [`Clock::nanos`] adds the counter's sub-millisecond part for
//! cost measurements: under `qemu-system-arm -icount shift=0` one guest
//! instruction is one virtual nanosecond, so a difference of `nanos()` is an
//! instruction count.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use securecom_core::Instant;

/// Core clock of QEMU's `lm3s6965evb` after reset: its model derives an 80 ns
/// period from the reset value of RCC (SYSDIV 16 of 200 MHz). The
/// `crypto-cost` binary checks it: under `-icount shift=0` a loop of 4 M
/// instructions must read 4 M ns.
pub const CORE_HZ: u32 = 12_500_000;

const TICKS_PER_MS: u32 = CORE_HZ / 1000;

static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// The running clock (owns SysTick).
pub struct Clock {
    _syst: SYST,
    high: u64,
    last: u32,
}

impl Clock {
    /// Starts SysTick at 1 kHz; time 0 is now.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(TICKS_PER_MS - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock {
            _syst: syst,
            high: 0,
            last: 0,
        }
    }

    fn extend(&mut self, ms: u32) -> u64 {
        if ms < self.last {
            self.high += 1 << 32;
        }
        self.last = ms;
        self.high | u64::from(ms)
    }

    /// Milliseconds since [`Clock::start`], as the core's `Instant`.
    pub fn now(&mut self) -> Instant {
        let ms = MILLIS.load(Ordering::Relaxed);
        Instant::from_millis(self.extend(ms))
    }

    /// Nanoseconds since [`Clock::start`], with the resolution of one core
    /// clock tick. Must not be called with interrupts masked.
    pub fn nanos(&mut self) -> u64 {
        loop {
            let before = MILLIS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            let after = MILLIS.load(Ordering::Relaxed);
            if before == after {
                let ms = self.extend(after);
                let ticks = u64::from(TICKS_PER_MS - 1 - current.min(TICKS_PER_MS - 1));
                return ms * 1_000_000 + ticks * 1_000_000_000 / u64::from(CORE_HZ);
            }
        }
    }
}

/// Adds up the time spent inside the core, to report cost per protocol step.
#[derive(Default)]
pub struct Meter {
    total: u64,
    mark: u64,
}

impl Meter {
    /// Runs `f` and adds its duration to the total.
    pub fn run<T>(&mut self, clock: &mut Clock, f: impl FnOnce() -> T) -> T {
        let start = clock.nanos();
        let r = f();
        self.total += clock.nanos() - start;
        r
    }

    /// Time inside the core since the previous call (or since the start).
    pub fn since_mark(&mut self) -> u64 {
        let d = self.total - self.mark;
        self.mark = self.total;
        d
    }

    /// All the time spent inside the core.
    pub fn total(&self) -> u64 {
        self.total
    }
}
