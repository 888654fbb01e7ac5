//! Everything that touches the hardware directly: the firmware's only `unsafe`.
//!
//! - [`pl011`]: volatile MMIO for the two UARTs;
//! - [`stack_high_water`], [`repaint_stack`]: the painted stack region;
//! - the `HardFault` handler, whose signature `cortex-m-rt` requires to be `unsafe`.
//!
//! The rest of the crate is `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

pub mod pl011;

use cortex_m_rt::{exception, ExceptionFrame};

use crate::exit::{exit, ExitCode};

extern "C" {
    /// Top of the stack (from `cortex-m-rt`'s `link.x`: the end of RAM).
    static _stack_start: u32;
    /// Bottom of the stack region (from `link.x`: the end of `.bss`/`.uninit`).
    static _stack_end: u32;
}

/// Bytes of stack ever used since reset: the part of the stack region where
/// `cortex-m-rt`'s `paint-stack` pattern was overwritten.
pub fn stack_high_water() -> usize {
    let bottom = &raw const _stack_end as usize;
    let top = &raw const _stack_start as usize;
    let mut addr = bottom;
    while addr < top {
        // SAFETY: `bottom..top` is the stack region of RAM that `link.x`
        // reserves and the reset handler painted: mapped, 4-aligned (asserted
        // by `link.x`) and initialised. Reading it races with nothing (one core,
        // and we read below our own stack pointer or words of our own frames).
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    top - addr
}

/// Paints the unused part of the stack again, so that the next
/// [`stack_high_water`] reports the peak from now on (the driver loop's,
/// without the boot's).
pub fn repaint_stack() {
    cortex_m::interrupt::free(|_| {
        let bottom = &raw const _stack_end as usize;
        // Keep a margin below our own frame (this function's locals and
        // whatever the compiler spills while the loop runs).
        let sp = cortex_m::register::msp::read() as usize;
        let limit = sp.saturating_sub(64) & !3;
        let mut addr = bottom;
        while addr < limit {
            // SAFETY: `bottom..limit` lies below the stack pointer, inside the
            // stack region of RAM (`link.x`), 4-aligned. No Rust object lives
            // there: there is one stack, and interrupts, which could push a
            // frame there, are masked for the duration.
            unsafe { core::ptr::write_volatile(addr as *mut u32, cortex_m_rt::STACK_PAINT_VALUE) };
            addr += 4;
        }
    });
}

/// Total size of the stack region (RAM not taken by statics).
pub fn stack_size() -> usize {
    (&raw const _stack_start as usize) - (&raw const _stack_end as usize)
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    // A crash must end QEMU with a status, never hang it.
    exit(ExitCode::Fault)
}
