//! Prints the size of each state machine (for the RAM budget in docs/PROTOCOL.md).
fn main() {
    use core::mem::size_of;
    use securecom_core::*;
    println!("Client            {}", size_of::<Client>());
    println!("RequestLink       {}", size_of::<RequestLink>());
    println!("ServerSession     {}", size_of::<ServerSession>());
    println!("channel::Channel  {}", size_of::<channel::Channel>());
    println!("noise::Handshake  {}", size_of::<noise::Handshake>());
    println!("noise::Transport  {}", size_of::<noise::Transport>());
    println!("chat::E2eChat     {}", size_of::<chat::E2eChat>());
    println!("ClientEvent       {}", size_of::<ClientEvent>());
    println!("ServerEvent       {}", size_of::<ServerEvent>());
}
