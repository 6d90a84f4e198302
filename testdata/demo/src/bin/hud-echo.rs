//! hud-echo: a Tokio TCP echo over loopback, in one process, on one runtime worker named
//! `echo-worker`. Its CPU is mostly in the kernel's socket calls: the samples' leaves are glibc's
//! `__send` and `__recv` (std sends with `send(MSG_NOSIGNAL)`), which use the frame-pointer
//! register for other work, so a frame-pointer walk stops at them. The ground truth: the samples
//! ending in them are called from `echo_connection` (the server side, `GROUND TRUTH:
//! echo_connection`) and `pump` (the client side), which between them hold nearly all the CPU.
//!
//! Usage: hud-echo [--seconds N] [--quiet]. Built with the demo (frame pointers, debug info).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes per write: small, so the time is in the system calls, not in copying.
const MESSAGE: usize = 512;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--quiet" => {}
            other => {
                eprintln!("hud-echo: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("echo-worker")
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(echo_connection(socket));
            }
        });
        let client = tokio::spawn(pump(address));
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        client.abort();
    });
}

/// Server side: sends back what it reads.
#[inline(never)]
async fn echo_connection(mut socket: TcpStream) {
    let mut buffer = vec![0u8; MESSAGE];
    loop {
        let n = match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if socket.write_all(&buffer[..n]).await.is_err() {
            // GROUND TRUTH: echo_connection
            return;
        }
    }
}

/// Client side: writes a message and reads it back, as fast as it can.
#[inline(never)]
async fn pump(address: std::net::SocketAddr) {
    let mut socket = TcpStream::connect(address).await.expect("connect");
    let message = vec![7u8; MESSAGE];
    let mut back = vec![0u8; MESSAGE];
    loop {
        if socket.write_all(&message).await.is_err() {
            return;
        }
        if socket.read_exact(&mut back).await.is_err() {
            return;
        }
    }
}
