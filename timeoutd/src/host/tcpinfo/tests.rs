//! Tests of `tcpinfo` against real loopback connections of this process,
//! and of the reply parser against damaged replies.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn inode_of(s: &TcpStream) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
    parse_socket_link(&link.to_string_lossy()).unwrap()
}

fn pair(bind: &str) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(bind).unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    (client, server)
}

#[test]
fn the_dump_finds_a_connection_by_inode_with_its_byte_counts() {
    let (mut client, mut server) = pair("127.0.0.1:0");
    client.write_all(&[7u8; 1000]).unwrap();
    let mut got = [0u8; 1000];
    server.read_exact(&mut got).unwrap();
    let inode = inode_of(&server);
    let all = dump_all().unwrap();
    let f = all
        .iter()
        .find(|f| f.inode == inode)
        .expect("server socket in the dump");
    assert_eq!(f.tuple.local, server.local_addr().unwrap());
    assert_eq!(f.tuple.remote, server.peer_addr().unwrap());
    assert_eq!(f.state, 1, "established");
    assert_eq!(f.bytes_received, Some(1000));
    assert!(f.last_data_recv_ms.unwrap() < 10_000);
    // The same socket by its exact tuple.
    let one = lookup(f.tuple).unwrap().expect("exact lookup");
    assert_eq!(one.inode, inode);
    assert_eq!(one.bytes_received, Some(1000));
    // And the client's end says it sent them.
    let c = lookup(TcpTuple {
        local: client.local_addr().unwrap(),
        remote: client.peer_addr().unwrap(),
    })
    .unwrap()
    .unwrap();
    assert_eq!(c.bytes_acked.map(|b| b >= 1000), Some(true));
    assert_eq!(c.inode, inode_of(&client));
}

#[test]
fn ipv6_connections_are_found_too() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: nothing to check");
        return;
    };
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    let f = lookup(TcpTuple {
        local: server.local_addr().unwrap(),
        remote: server.peer_addr().unwrap(),
    })
    .unwrap()
    .expect("v6 lookup");
    assert_eq!(f.inode, inode_of(&server));
    drop(client);
}

#[test]
fn a_closed_connection_is_gone_not_an_error() {
    let (client, server) = pair("127.0.0.1:0");
    let tuple = TcpTuple {
        local: server.local_addr().unwrap(),
        remote: server.peer_addr().unwrap(),
    };
    // Shut down before the drop: a child forked by another test holds a copy
    // of every fd until its exec, which would keep the connection open.
    client.shutdown(std::net::Shutdown::Both).unwrap();
    server.shutdown(std::net::Shutdown::Both).unwrap();
    drop(client);
    drop(server);
    // TIME_WAIT sockets are not full sockets: either absent or in a closing state.
    if let Some(f) = lookup(tuple).unwrap() {
        assert_ne!(f.state, 1, "{f:?}");
    }
}

#[test]
fn socket_inodes_lists_this_process_sockets() {
    let (client, _server) = pair("127.0.0.1:0");
    let mine = socket_inodes(Path::new("/proc"), std::process::id());
    assert!(mine.contains(&inode_of(&client)));
    assert!(socket_inodes(Path::new("/proc"), u32::MAX).is_empty());
}

#[test]
fn damaged_replies_are_errors_or_skipped_never_panics() {
    let mut out = Vec::new();
    // A header announcing more than is there.
    let mut b = 100u32.to_ne_bytes().to_vec();
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&[0; 10]);
    assert!(parse_datagram(&b, &mut out).is_err());
    // A diag message too short to read is skipped.
    let mut b = ((NLMSG_HDR + 8) as u32).to_ne_bytes().to_vec();
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&[0; 8]);
    assert!(matches!(parse_datagram(&b, &mut out), Ok(Batch::More)));
    assert!(out.is_empty());
    // Every prefix of a real message parses or fails cleanly.
    let real = request(libc::AF_INET, None, NLM_F_REQUEST);
    for n in 0..real.len() {
        let _ = parse_datagram(&real[..n], &mut out);
        let _ = parse_diag_msg(&real[..n]);
    }
    // An attribute with a length past the end ends the attribute list.
    assert_eq!(attributes(&[200, 0, 2, 0, 1, 2]).count(), 0);
    assert_eq!(parse_socket_link("pipe:[12]"), None);
    assert_eq!(parse_socket_link("socket:[12]"), Some(12));
}

#[test]
fn unread_and_unacknowledged_bytes_are_the_queues() {
    let (mut client, mut server) = pair("127.0.0.1:0");
    client.write_all(&[1u8; 300]).unwrap();
    let tuple = TcpTuple {
        local: server.local_addr().unwrap(),
        remote: server.peer_addr().unwrap(),
    };
    // Wait until the kernel has the bytes, unread by us.
    let mut f = None;
    for _ in 0..200 {
        let got = lookup(tuple).unwrap().unwrap();
        if got.bytes_received == Some(300) {
            f = Some(got);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let f = f.expect("the bytes arrived");
    assert_eq!(f.rqueue, 300);
    assert_eq!(f.app_read(), Some(0), "nothing read by the owner yet");
    let mut got = [0u8; 100];
    server.read_exact(&mut got).unwrap();
    let f = lookup(tuple).unwrap().unwrap();
    assert_eq!((f.rqueue, f.app_read()), (200, Some(100)));
    // The client's end: every byte written is acknowledged or queued (the
    // handshake may add a constant 1: only differences are used).
    let ctuple = TcpTuple {
        local: client.local_addr().unwrap(),
        remote: client.peer_addr().unwrap(),
    };
    let before = lookup(ctuple).unwrap().unwrap().app_written().unwrap();
    client.write_all(&[2u8; 77]).unwrap();
    let after = lookup(ctuple).unwrap().unwrap().app_written().unwrap();
    assert_eq!(after - before, 77);
}
