//! The agent's socket: permissions, a stale socket replaced, a live agent's socket and other
//! files left alone.

use std::os::unix::fs::PermissionsExt;

use agent::socket::{bind, socket_path, SocketError};

#[tokio::test]
async fn socket_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    assert_eq!(socket_path(&format!("unix://{}", path.display())), path);
    assert_eq!(socket_path(&format!("unix:{}", path.display())), path);

    let live = bind(&path).expect("bind");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "owner and group only, never world-writable");

    // A live agent on the path: refused, and its socket still works.
    let e = bind(&path).unwrap_err();
    assert!(matches!(e, SocketError::InUse(_)) && e.to_string().contains("another agent is serving"), "{e}");
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());

    // The agent died without removing its socket: the stale socket is replaced.
    drop(live);
    assert!(path.exists(), "a dropped listener leaves its socket file behind");
    let again = bind(&path).expect("rebinding over a stale socket");
    drop(again);

    // Not a socket: never removed.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let e = bind(&file).unwrap_err();
    assert!(matches!(e, SocketError::NotASocket(_)) && e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // A folder that does not exist.
    let e = bind(&dir.path().join("missing/agent.sock")).unwrap_err();
    assert!(matches!(e, SocketError::NoFolder { .. }) && e.to_string().contains("does not exist"), "{e}");
}
