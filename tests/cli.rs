//! The `f2idiff` binary: `pack` and `info` succeed on good input; on bad input they exit
//! non-zero with exactly one line on stderr naming the culprit, and leave no file behind.

mod common;

use common::skipped;
use std::path::Path;
use std::process::{Command, Output};

fn f2idiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_f2idiff"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr_line(out: &Output) -> String {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    err
}

#[test]
fn pack_then_info_verify() {
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.f2i");
    let o = f2idiff(&[
        "pack",
        "tests/data/pack/tiny",
        "-o",
        out.to_str().unwrap(),
        "--dtype",
        "f16",
        "--lora",
        "runtime",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = f2idiff(&["info", out.to_str().unwrap(), "--verify"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    for want in [
        "lora:     Runtime",
        "unet       f16",
        "vae        f16",
        "dinov2     f16",
        "cond_proj: 24 → 24",
        "checksums match",
        "sha256",
    ] {
        assert!(text.contains(want), "`{want}` not in:\n{text}");
    }
}

#[test]
fn pack_failure_is_one_line_and_leaves_nothing() {
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.f2i");
    let o = f2idiff(&[
        "pack",
        "tests/data/pack/does-not-exist",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr_line(&o);
    assert!(err.contains("does-not-exist"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let o = f2idiff(&[
        "pack",
        "tests/data/pack/tiny",
        "-o",
        out.to_str().unwrap(),
        "--lora-alpha",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("--lora-alpha"));
}

#[test]
fn info_on_a_corrupt_pack_names_the_tensor() {
    if skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.f2i");
    assert!(
        f2idiff(&["pack", "tests/data/pack/tiny", "-o", out.to_str().unwrap()])
            .status
            .success()
    );
    let mut bytes = std::fs::read(&out).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10; // last byte of the last tensor
    std::fs::write(&out, &bytes).unwrap();
    assert!(
        f2idiff(&["info", out.to_str().unwrap()]).status.success(),
        "info alone reads no data"
    );
    let o = f2idiff(&["info", out.to_str().unwrap(), "--verify"]);
    assert!(!o.status.success());
    let err = stderr_line(&o);
    assert!(
        err.contains("checksum mismatch") && err.contains("cond_proj.bias"),
        "{err}"
    );

    let o = f2idiff(&["info", Path::new("Cargo.toml").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr_line(&o).contains("not an f2idiff pack"));
}

/// `f2idiff info x.f2i | head -1`: the reader goes away, the CLI ends quietly (SIGPIPE, as other
/// tools do) rather than panicking in `println!`.
#[test]
#[cfg(unix)]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    if skipped() {
        return;
    }
    use std::os::fd::{FromRawFd, OwnedFd};
    // A pipe whose read end is closed before the child starts, so its first write always
    // meets a closed pipe (closing it after spawning raced with a fast child).
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints, as pipe(2) requires.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) returned two fresh descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let child = Command::new(env!("CARGO_BIN_EXE_f2idiff"))
        .args(["info", "models/f2idiff-demo.f2i"])
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}
