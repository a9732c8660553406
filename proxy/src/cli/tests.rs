use std::io::{self, Write};

use super::write_ignoring_broken_pipe;

/// A writer whose every write and flush fails with `kind`.
struct FailingWriter {
    kind: io::ErrorKind,
}

impl Write for FailingWriter {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(self.kind.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(self.kind.into())
    }
}

#[test]
fn broken_pipe_is_not_an_error() {
    let mut out = FailingWriter {
        kind: io::ErrorKind::BrokenPipe,
    };
    let result = write_ignoring_broken_pipe(&mut out, |out| writeln!(out, "decision: ALLOW"));
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn other_write_error_is_reported() {
    let mut out = FailingWriter {
        kind: io::ErrorKind::StorageFull,
    };
    let error =
        write_ignoring_broken_pipe(&mut out, |out| writeln!(out, "decision: ALLOW")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("failed to write to standard output"),
        "{error:#}"
    );
}

#[test]
fn output_is_flushed() {
    let mut out = io::BufWriter::new(Vec::new());
    write_ignoring_broken_pipe(&mut out, |out| write!(out, "ok")).unwrap();
    assert_eq!(out.buffer(), b"");
    assert_eq!(out.get_ref(), b"ok");
}
