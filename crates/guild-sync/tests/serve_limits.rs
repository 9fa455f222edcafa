//! `guild-sync serve` as a process, against clients that hold connections or send what they
//! should not: a half-sent request (slowloris), a body that never arrives and an idle
//! keep-alive connection must not keep SIGTERM from ending the process within 10 s, and an
//! upload with a wrong key is refused before its body is read.

mod common;

use std::time::{Duration, Instant};

use guild_sync::testing::TestDb;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStderr};

use common::on_a_fresh_db_within;

/// SPEC: SIGTERM finishes within 10 s even while clients hold connections.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);

/// Start `serve` on a free port with an API key; returns it, its address and its log lines.
async fn start_serve(db: &TestDb) -> (Child, String, Lines<BufReader<ChildStderr>>) {
    let mut child = common::spawn_serve(db, ("GUILD_SYNC_API_KEY", "k3y"));
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("serve exited early");
        if line.contains("HTTP API listening") {
            let start = line.find("address=").expect("the address is logged") + 8;
            break line[start..].split_whitespace().next().unwrap().to_string();
        }
    };
    (child, address, lines)
}

#[tokio::test]
async fn sigterm_ends_serve_within_ten_seconds_while_clients_hold_connections() {
    on_a_fresh_db_within(Duration::from_secs(120), |db| async move {
        let (mut child, address, mut lines) = start_serve(&db).await;

        // Headers sent one at a time and never finished.
        let mut slowloris = TcpStream::connect(&address).await.unwrap();
        slowloris
            .write_all(b"POST /api/guild-sync/addon-upload HTTP/1.1\r\nHost: guild\r\n")
            .await
            .unwrap();
        // Complete headers, a body announced and never sent.
        let mut stalled_body = TcpStream::connect(&address).await.unwrap();
        stalled_body
            .write_all(
                b"POST /api/guild-sync/addon-upload HTTP/1.1\r\nHost: guild\r\n\
                  X-API-Key: k3y\r\nContent-Type: application/json\r\n\
                  Content-Length: 4000000\r\n\r\n{\"characters\": [",
            )
            .await
            .unwrap();
        // One answered request, then the connection kept alive and idle.
        let mut idle = TcpStream::connect(&address).await.unwrap();
        idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: guild\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        idle.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");

        let signalled = Instant::now();
        kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let status = child.wait().await.unwrap();
        let took = signalled.elapsed();
        drain.await.unwrap();
        assert_eq!(status.code(), Some(0), "serve did not exit 0 after SIGTERM");
        assert!(
            took < SHUTDOWN_LIMIT,
            "SIGTERM took {took:?} with connections held open"
        );
        drop((slowloris, stalled_body, idle));
    })
    .await;
}

#[tokio::test]
async fn an_upload_with_a_wrong_key_is_refused_before_its_body_is_read() {
    on_a_fresh_db_within(Duration::from_secs(120), |db| async move {
        let (_child, address, _lines) = start_serve(&db).await;
        // A 4 MB body announced and never sent: only a check made before reading it can answer.
        let mut client = TcpStream::connect(&address).await.unwrap();
        client
            .write_all(
                b"POST /api/guild-sync/addon-upload HTTP/1.1\r\nHost: guild\r\n\
                  X-API-Key: wrong\r\nContent-Type: application/json\r\n\
                  Content-Length: 4000000\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut answer))
            .await
            .expect("no answer while the body is unsent: the key was not checked first")
            .unwrap();
        assert_eq!(&answer, b"HTTP/1.1 401");
    })
    .await;
}
