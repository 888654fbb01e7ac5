//! How the firmware ends: a status through semihosting, so QEMU exits with it.

/// Exit statuses of the firmware (QEMU's own exit status; see README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
#[repr(i32)]
pub enum ExitCode {
    /// Logged out cleanly (after `chats N`).
    Success = 0,
    /// A Rust panic.
    Panic = 1,
    /// The configuration file is missing or invalid.
    Config = 2,
    /// No entropy for the RNG seed.
    Entropy = 3,
    /// The server refused the login.
    LoginRefused = 4,
    /// The standard channel failed (a fatal protocol, crypto or timeout error).
    Session = 5,
    /// The server closed the session for another reason than our logout.
    ClosedByServer = 6,
    /// A hardware fault (HardFault).
    Fault = 7,
    /// The server never confirmed the logout.
    LogoutTimeout = 8,
}

/// Ends the program: QEMU exits with `code`.
pub fn exit(code: ExitCode) -> ! {
    semihosting::process::exit(code as i32)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => defmt::error!("panic at {=str}:{=u32}", l.file(), l.line()),
        None => defmt::error!("panic"),
    }
    exit(ExitCode::Panic)
}
