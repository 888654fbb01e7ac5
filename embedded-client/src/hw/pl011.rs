//! A polled driver for the PL011-style UARTs of the LM3S6965 (QEMU `lm3s6965evb`).
//!
//! Its only `unsafe` is two volatile accesses to memory-mapped registers. The
//! `lm3s6965` PAC has no UART registers, so the offsets are written here from
//! the Stellaris data sheet (PL011 layout). Everything above this module
//! speaks `embedded-io` 0.6.

use core::convert::Infallible;
use core::sync::atomic::{AtomicBool, Ordering};

use embedded_io::{ErrorType, Read, ReadReady, Write, WriteReady};

/// The two UARTs QEMU bridges to host TCP.
#[derive(Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum Port {
    /// UART0 at 0x4000_C000: QEMU's first `-serial` (the standard channel).
    Uart0,
    /// UART1 at 0x4000_D000: QEMU's second `-serial` (the request channel).
    Uart1,
}

impl Port {
    const fn base(self) -> usize {
        match self {
            Port::Uart0 => 0x4000_C000,
            Port::Uart1 => 0x4000_D000,
        }
    }

    const fn index(self) -> usize {
        match self {
            Port::Uart0 => 0,
            Port::Uart1 => 1,
        }
    }
}

/// Which ports have an owner: a second `Uart` for a port cannot be made.
static TAKEN: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

const DR: usize = 0x000;
const FR: usize = 0x018;
const LCRH: usize = 0x02C;
const CTL: usize = 0x030;

const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_BUSY: u32 = 1 << 3;
const LCRH_FEN: u32 = 1 << 4;
const LCRH_WLEN8: u32 = 0b11 << 5;
const CTL_UARTEN: u32 = 1 << 0;
const CTL_TXE: u32 = 1 << 8;
const CTL_RXE: u32 = 1 << 9;

/// One UART, owned: at most one `Uart` exists per port (see [`Uart::take`]).
pub struct Uart {
    base: usize,
}

impl Uart {
    /// Configures `port` (8N1, FIFOs on) and returns its owner; `None` if it
    /// was taken before. The baud rate does not matter in QEMU.
    pub fn take(port: Port) -> Option<Self> {
        if TAKEN[port.index()].swap(true, Ordering::AcqRel) {
            return None;
        }
        let uart = Uart { base: port.base() };
        uart.write_reg(CTL, 0);
        uart.write_reg(LCRH, LCRH_WLEN8 | LCRH_FEN);
        uart.write_reg(CTL, CTL_UARTEN | CTL_TXE | CTL_RXE);
        Some(uart)
    }

    fn read_reg(&self, offset: usize) -> u32 {
        // SAFETY: `base` is one of the two UART blocks (`Port::base`) and
        // `offset` one of the register constants above, so the address is a
        // valid, aligned, always-mapped 32-bit device register. A volatile read
        // has no effect on Rust-visible memory (reading DR pops the RX FIFO,
        // which only this owner does).
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write_reg(&self, offset: usize, value: u32) {
        // SAFETY: as in `read_reg`; the write reaches a device register, never
        // Rust-visible memory.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn rx_empty(&self) -> bool {
        self.read_reg(FR) & FR_RXFE != 0
    }

    fn tx_full(&self) -> bool {
        self.read_reg(FR) & FR_TXFF != 0
    }

    /// Moves the bytes already in the RX FIFO into `buf`, without waiting.
    pub fn read_available(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() && !self.rx_empty() {
            buf[n] = self.read_reg(DR) as u8;
            n += 1;
        }
        n
    }
}

impl ErrorType for Uart {
    type Error = Infallible;
}

impl Read for Uart {
    /// Blocks until at least one byte arrived, then returns what is there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.rx_empty() {}
        Ok(self.read_available(buf))
    }
}

impl ReadReady for Uart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.rx_empty())
    }
}

impl Write for Uart {
    /// Blocks until at least one byte fits, then fills the TX FIFO.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.tx_full() {}
        let mut n = 0;
        while n < buf.len() && !self.tx_full() {
            self.write_reg(DR, u32::from(buf[n]));
            n += 1;
        }
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(FR) & FR_BUSY != 0 {}
        Ok(())
    }
}

impl WriteReady for Uart {
    fn write_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.tx_full())
    }
}
