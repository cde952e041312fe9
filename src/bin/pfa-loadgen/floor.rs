//! The kernel's floor under the fan-out: one plain `write` of a ready-made WebSocket frame to
//! each of N loopback TCP sockets, at the steady rate of the fan-out rows, with nothing of
//! pfa-sync in the way (no HTTP, no store, no locks). The readers are tokio tasks of this
//! process, as the subscribers are. The writing thread's CPU time includes what the kernel does
//! for a loopback send in the sender's context (the receiver's TCP work and its wake-up), as
//! the server's does; so a server that writes each event to each socket once cannot cost less
//! per delivery than this, and its latency at this rate cannot be less than a round here.

use crate::{histogram::Histogram, procs};
use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};
use tokio::io::AsyncReadExt;

/// What the floor measurement found.
pub struct Floor {
    pub sockets: usize,
    pub frame_len: usize,
    pub writes: u64,
    /// CPU of the writing thread per 1,000 writes.
    pub cpu_per_1k_ms: f64,
    /// Time to write the frame to every socket once (one round), p50 and p99.
    pub round_p50_ms: f64,
    pub round_p99_ms: f64,
}

/// A WebSocket text frame (server to client: not masked) with a `payload`-byte JSON body.
fn frame(payload: usize) -> Vec<u8> {
    let mut body = br#"{"type":"SYNC_PROGRESS","jobId":"job-floor","pad":""#.to_vec();
    body.resize(payload.saturating_sub(2), b'x');
    body.extend_from_slice(b"\"}");
    let mut frame = vec![0x81];
    match body.len() {
        n if n < 126 => frame.push(n as u8),
        n => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&body);
    frame
}

/// Writes a `payload`-byte frame to each of `sockets` loopback sockets, `rate` rounds a second
/// for `secs` seconds; fails if a reader did not get every byte.
pub async fn measure(
    sockets: usize,
    rate: u32,
    secs: u64,
    payload: usize,
    ticks: u64,
) -> anyhow::Result<Floor> {
    let needed = 2 * sockets as u64 + 64;
    let limit = open_file_limit();
    anyhow::ensure!(
        limit.is_none_or(|l| l >= needed),
        "the kernel floor at {sockets} sockets needs {needed} open files in this process and \
         the limit is {}: raise it (`ulimit -n 65536` as root) or leave out `floor`",
        limit.unwrap_or(0)
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut writers = Vec::with_capacity(sockets);
    let mut readers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let client = tokio::net::TcpStream::connect(addr).await?;
        let (server, _) = listener.accept()?;
        // As the server's sockets: no Nagle, blocking writes.
        server.set_nodelay(true)?;
        writers.push(server);
        readers.push(tokio::spawn(read_all(client)));
    }
    let frame = frame(payload);
    let frame_len = frame.len();
    let rounds = u64::from(rate) * secs;
    let writer = std::thread::spawn(move || write_rounds(writers, &frame, rate, rounds, ticks));
    let (cpu, round_times) = tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the floor writer panicked"))??;
    let expected = rounds * frame_len as u64;
    for reader in readers {
        let got = reader.await??;
        anyhow::ensure!(
            got == expected,
            "a floor reader got {got} of {expected} bytes"
        );
    }
    let rounds_us = Histogram::new();
    for took in &round_times {
        rounds_us.record(took.as_micros() as u64);
    }
    let round = rounds_us.summary();
    let writes = rounds * sockets as u64;
    Ok(Floor {
        sockets,
        frame_len,
        writes,
        cpu_per_1k_ms: cpu.as_secs_f64() * 1000.0 / (writes as f64 / 1000.0),
        round_p50_ms: round.p50_us as f64 / 1000.0,
        round_p99_ms: round.p99_us as f64 / 1000.0,
    })
}

/// The soft limit on open files of this process (`None`: unlimited or unreadable).
fn open_file_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Reads until the writer closes; the number of bytes read.
async fn read_all(mut socket: tokio::net::TcpStream) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        match socket.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// The writing thread: `rounds` rounds at `rate` a second; its CPU time and each round's time.
fn write_rounds(
    mut sockets: Vec<TcpStream>,
    frame: &[u8],
    rate: u32,
    rounds: u64,
    ticks: u64,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let every = Duration::from_secs(1) / rate.max(1);
    let mut times = Vec::with_capacity(rounds as usize);
    let start = Instant::now();
    let cpu_before = procs::thread_cpu_time(ticks);
    for round in 0..rounds {
        let due = start + every * round as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let began = Instant::now();
        for socket in &mut sockets {
            socket.write_all(frame)?;
        }
        times.push(began.elapsed());
    }
    let cpu = procs::thread_cpu_time(ticks) - cpu_before;
    drop(sockets);
    Ok((cpu, times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length_in_the_header() {
        let small = frame(100);
        assert_eq!((small[0], small[1] as usize, small.len()), (0x81, 100, 102));
        let large = frame(300);
        assert_eq!(
            (large[1], u16::from_be_bytes([large[2], large[3]])),
            (126, 300)
        );
        assert_eq!(large.len(), 304);
        assert!(serde_json::from_slice::<serde_json::Value>(&large[4..]).is_ok());
    }
}
