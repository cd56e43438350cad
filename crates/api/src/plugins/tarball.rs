//! The download's body: a gzipped tar of a staged plugin, produced on a blocking thread and
//! streamed chunk by chunk (never whole in memory; the original buffered it,
//! `handlers/plugins_install.go:174-282`). Entry names are relative to the plugin's root, with
//! no `<name>/` prefix, directories included (`handlers/plugins_install_pipeline.go:400-434`).
//! The tar is ustar, with GNU long-name entries for paths over 100 bytes.

use std::io::{self, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::sync::mpsc;

use super::source::Staged;

const BLOCK: usize = 512;
/// Bytes gathered before a chunk is sent to the client.
const CHUNK: usize = 64 * 1024;

/// Streams `staged` as `.tar.gz`; the staging folder is removed once the stream ends.
pub fn stream(staged: Staged) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let sink = ChunkSender {
            buffer: Vec::with_capacity(CHUNK),
            sender: sender.clone(),
        };
        if let Err(error) = write_tar(&staged, sink) {
            tracing::warn!(%error, plugin = staged.name, "plugin download broke off");
            let _ = sender.blocking_send(Err(error));
        }
        drop(staged);
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

fn write_tar(staged: &Staged, sink: ChunkSender) -> io::Result<()> {
    let mut gz = GzEncoder::new(sink, Compression::default());
    let tree = &staged.tree;
    // Directories first (sorted, so parents precede children), then files.
    for dir in &tree.dirs {
        header(&mut gz, &format!("{dir}/"), 0, b'5', 0o755)?;
    }
    for file in &tree.files {
        header(&mut gz, file.path.as_str(), file.size, b'0', 0o644)?;
        let mut reader = std::fs::File::open(tree.root.join(file.path.as_str()))?;
        let copied = io::copy(&mut io::Read::take(&mut reader, file.size), &mut gz)?;
        if copied != file.size {
            return Err(io::Error::other("staged file changed"));
        }
        pad(&mut gz, file.size)?;
    }
    gz.write_all(&[0; BLOCK * 2])?;
    let mut sink = gz.finish()?;
    sink.flush()
}

fn pad(out: &mut impl Write, size: u64) -> io::Result<()> {
    let rest = (size as usize) % BLOCK;
    if rest != 0 {
        out.write_all(&[0; BLOCK][..BLOCK - rest])?;
    }
    Ok(())
}

/// One header (preceded by a GNU `././@LongLink` entry when the name is over 100 bytes).
fn header(out: &mut impl Write, name: &str, size: u64, kind: u8, mode: u32) -> io::Result<()> {
    if name.len() > 100 {
        let mut long = name.as_bytes().to_vec();
        long.push(0);
        out.write_all(&block("././@LongLink", long.len() as u64, b'L', 0o644))?;
        out.write_all(&long)?;
        pad(out, long.len() as u64)?;
    }
    let short: String = name
        .chars()
        .scan(0, |len, c| {
            *len += c.len_utf8();
            (*len <= 100).then_some(c)
        })
        .collect();
    out.write_all(&block(&short, size, kind, mode))
}

fn block(name: &str, size: u64, kind: u8, mode: u32) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 1000); // uid
    octal(&mut h[116..124], 1000); // gid
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0); // mtime
    h[148..156].fill(b' ');
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let digits = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(digits.as_bytes());
    h
}

/// Zero-padded octal, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    let digits = &digits.as_bytes()[digits.len().saturating_sub(width)..];
    field[..width].copy_from_slice(digits);
    field[width] = 0;
}

/// A `Write` that hands the bytes to the response in chunks (blocking when the client is slow).
struct ChunkSender {
    buffer: Vec<u8>,
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_a_valid_checksum_and_octal_fields() {
        let h = block("plugin.yaml", 10, b'0', 0o644);
        assert_eq!(&h[..11], b"plugin.yaml");
        assert_eq!(&h[124..136], b"00000000012\0");
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h;
        copy[148..156].fill(b' ');
        assert_eq!(stored, copy.iter().map(|b| u32::from(*b)).sum::<u32>());
    }
}
