//! The buffer end to end on real files: rolls, reopening, crashes, damage,
//! a full buffer, file modes, and a writer and a reader running together.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::format::{self, FRAME_OVERHEAD, HEADER_LEN};
use super::*;
use crate::pipeline::{Ack, EncodedBatch};

/// A record of one document of `n` bytes takes this much room.
fn frame_len(doc_len: usize) -> u64 {
    FRAME_OVERHEAD + 12 + 4 + doc_len as u64
}

fn opts() -> DiskOptions {
    DiskOptions {
        max_bytes: 1 << 20,
        segment_bytes: 512,
        when_full: WhenFull::Block,
        sync: SyncPolicy::Always,
        sync_interval: Duration::from_millis(20),
        sync_bytes: 1 << 20,
    }
}

/// A batch of one document `doc`, whose input ack counts into `acked`.
fn batch(doc: &str, acked: &Arc<AtomicUsize>) -> EncodedBatch {
    let a = acked.clone();
    EncodedBatch {
        docs: doc.as_bytes().to_vec(),
        ends: vec![doc.len()],
        acks: vec![Ack::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
        })],
    }
}

fn doc(i: usize) -> String {
    format!("{{\"n\":{i:04},\"pad\":\"{}\"}}", "x".repeat(60))
}

async fn fill(w: &BufferWriter, range: std::ops::Range<usize>, acked: &Arc<AtomicUsize>) {
    for i in range {
        assert_eq!(
            w.append(batch(&doc(i), acked)).await.unwrap(),
            Appended::Stored
        );
    }
}

/// Reads `n` batches; returns each one's document and buffer ack.
async fn read(r: &mut BufferReader, n: usize) -> Vec<(String, Ack)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut b = tokio::time::timeout(Duration::from_secs(5), r.next())
            .await
            .expect("a record within 5 s")
            .expect("the buffer is not closed");
        assert_eq!(b.len(), 1);
        let ack = b.acks.pop().unwrap();
        out.push((String::from_utf8(b.doc(0).to_vec()).unwrap(), ack));
    }
    out
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    v.sort();
    v
}

/// Opens the buffer in `dir`. A buffer dropped just before may still be held
/// for a moment by a blocking task it started (a read, a sync, a segment
/// deletion), and keeps its lock until that ends: wait for it, boundedly.
fn open(dir: &Path) -> (DiskBuffer, OpenReport) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match DiskBuffer::open(dir, opts()) {
            Err(BufferError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r.unwrap(),
        }
    }
}

#[tokio::test]
async fn append_read_and_ack_across_segment_rolls_then_settled_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let (buf, report) = open(dir.path());
    assert_eq!(report.records, 0);
    let acked = Arc::new(AtomicUsize::new(0));
    fill(&buf.writer(), 0..20, &acked).await;
    assert_eq!(
        acked.load(Ordering::SeqCst),
        20,
        "sync = always acks at once"
    );
    assert!(
        segments(dir.path()).len() >= 5,
        "{:?}",
        segments(dir.path())
    );
    let got = read(&mut buf.reader(), 20).await;
    let docs: Vec<_> = got.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(docs, (0..20).map(doc).collect::<Vec<_>>());
    assert_eq!(buf.stats().documents, 20);
    // Every record is unsettled: all the bytes but the segment headers.
    let s = buf.stats();
    let headers = HEADER_LEN * segments(dir.path()).len() as u64;
    assert_eq!(s.unacked_bytes, s.bytes - headers);
    assert_eq!(s.unacked_bytes, 20 * frame_len(doc(0).len()));
    for (_, ack) in got {
        ack.done();
    }
    let s = buf.stats();
    assert_eq!((s.records, s.documents, s.oldest_appended_ms), (0, 0, None));
    // The segment being written keeps its settled records on disk; they no
    // longer count as held for the output.
    assert_eq!(s.unacked_bytes, 0);
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "only the segment being written is left"
    );
    assert_eq!(
        s.bytes,
        std::fs::metadata(&segments(dir.path())[0]).unwrap().len()
    );
}

#[tokio::test]
async fn with_interval_sync_the_input_is_acked_after_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let o = DiskOptions {
        sync: SyncPolicy::Interval,
        sync_interval: Duration::from_millis(300),
        ..opts()
    };
    let (buf, _) = DiskBuffer::open(dir.path(), o).unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    fill(&buf.writer(), 0..3, &acked).await;
    assert_eq!(
        acked.load(Ordering::SeqCst),
        0,
        "not acked before it is synced"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(acked.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn reopen_after_a_clean_close_replays_only_unacked_records_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let (buf, _) = open(dir.path());
        fill(&buf.writer(), 0..10, &acked).await;
        let mut got = read(&mut buf.reader(), 10).await.into_iter();
        for (_, ack) in got.by_ref().take(6) {
            ack.done();
        }
        buf.writer().close().await.unwrap();
    }
    let (buf, report) = open(dir.path());
    assert_eq!(report.records, 4);
    assert_eq!(buf.stats().unacked_bytes, 4 * frame_len(doc(6).len()));
    assert!(
        matches!(report.acked, AckedUse::Applied(_)),
        "{:?}",
        report.acked
    );
    let mut r = buf.reader();
    let docs: Vec<_> = read(&mut r, 4).await.into_iter().map(|(d, _)| d).collect();
    assert_eq!(docs, (6..10).map(doc).collect::<Vec<_>>());
    let more = tokio::time::timeout(Duration::from_millis(100), r.next()).await;
    assert!(more.is_err(), "nothing else is replayed");
}

#[tokio::test]
async fn an_ack_out_of_order_is_sent_again_rather_than_lost() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let (buf, _) = open(dir.path());
        fill(&buf.writer(), 0..3, &acked).await;
        let mut got = read(&mut buf.reader(), 3).await;
        got.remove(2).1.done(); // the newest settles first
        buf.writer().close().await.unwrap();
    }
    let (buf, report) = open(dir.path());
    assert_eq!(report.records, 3);
    let docs: Vec<_> = read(&mut buf.reader(), 3)
        .await
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(docs, (0..3).map(doc).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_crash_that_tears_the_last_record_truncates_it_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let (buf, _) = open(dir.path());
        fill(&buf.writer(), 0..3, &acked).await;
        // Dropped without close: a crash.
    }
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let cut = len - frame_len(doc(2).len()) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let (buf, report) = open(dir.path());
    assert_eq!(report.records, 2);
    assert_eq!(report.truncated.len(), 1, "{report:?}");
    let torn = &report.truncated[0];
    assert_eq!((torn.start, torn.end), (len - frame_len(doc(2).len()), cut));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), torn.start);
    fill(&buf.writer(), 3..4, &acked).await;
    let docs: Vec<_> = read(&mut buf.reader(), 3)
        .await
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(docs, vec![doc(0), doc(1), doc(3)]);
}

#[tokio::test]
async fn a_flipped_byte_in_the_middle_skips_that_record_only_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let (buf, _) = open(dir.path());
        fill(&buf.writer(), 0..3, &acked).await;
    }
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = HEADER_LEN + frame_len(doc(0).len());
    bytes[(second + 30) as usize] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let (buf, report) = open(dir.path());
    assert_eq!(report.records, 2);
    assert_eq!(report.corrupt.len(), 1);
    let d = &report.corrupt[0];
    assert_eq!((d.start, d.end), (second, second + frame_len(doc(1).len())));
    assert_eq!(d.segment, seg);
    assert_eq!(buf.stats().corrupt_records, 1);
    let docs: Vec<_> = read(&mut buf.reader(), 2)
        .await
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(docs, vec![doc(0), doc(2)]);
}

#[tokio::test]
async fn empty_segment_files_open_fine_and_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let (buf, _) = open(dir.path());
        fill(&buf.writer(), 0..2, &acked).await;
    }
    let last = segments(dir.path()).pop().unwrap();
    let id = files::segment_id(last.file_name().unwrap().to_str().unwrap()).unwrap();
    // One left empty by a crash after its creation, one an operator touched.
    std::fs::write(files::segment_path(dir.path(), id + 1), b"").unwrap();
    std::fs::write(files::segment_path(dir.path(), id + 2), b"").unwrap();

    let (buf, report) = open(dir.path());
    assert_eq!((report.segments, report.records, report.removed), (3, 2, 2));
    assert!(
        report.corrupt.is_empty() && report.truncated.is_empty(),
        "{report:?}"
    );
    fill(&buf.writer(), 2..3, &acked).await;
    let docs: Vec<_> = read(&mut buf.reader(), 3)
        .await
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(docs, (0..3).map(doc).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_missing_or_garbage_acked_file_replays_everything() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let (buf, _) = open(dir.path());
        fill(&buf.writer(), 0..3, &acked).await;
        for (_, ack) in read(&mut buf.reader(), 3).await {
            ack.done();
        }
        buf.writer().close().await.unwrap();
    }
    std::fs::remove_file(dir.path().join(files::ACKED_FILE)).unwrap();
    let (buf, report) = open(dir.path());
    assert_eq!((report.records, report.acked), (3, AckedUse::Missing));
    drop(buf);

    std::fs::write(dir.path().join(files::ACKED_FILE), b"not a position").unwrap();
    let (buf, report) = open(dir.path());
    assert_eq!((report.records, report.acked), (3, AckedUse::Garbage));
    assert_eq!(read(&mut buf.reader(), 3).await.len(), 3);
}

#[tokio::test]
async fn an_acked_position_past_the_data_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let (buf, _) = open(dir.path());
        fill(&buf.writer(), 0..3, &acked).await;
    }
    let seg = segments(dir.path()).pop().unwrap();
    let id = files::segment_id(seg.file_name().unwrap().to_str().unwrap()).unwrap();
    for past in [
        Position {
            segment: id + 5,
            offset: HEADER_LEN,
        },
        Position {
            segment: id,
            offset: 1 << 30,
        },
    ] {
        files::write_acked(dir.path(), past).unwrap();
        let (buf, report) = open(dir.path());
        assert_eq!(report.acked, AckedUse::PastData(past));
        assert_eq!(report.records, 3);
        drop(buf);
    }
}

#[tokio::test]
async fn a_full_buffer_blocks_the_writer_until_an_ack_frees_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let o = DiskOptions {
        max_bytes: 2048,
        ..opts()
    };
    let (buf, _) = DiskBuffer::open(dir.path(), o).unwrap();
    let w = buf.writer();
    let acked = Arc::new(AtomicUsize::new(0));
    let rec = frame_len(doc(0).len());
    let mut n = 0;
    while buf.stats().bytes + rec + HEADER_LEN <= 2048 {
        fill(&w, n..n + 1, &acked).await;
        n += 1;
    }
    let blocked = {
        let (w, acked) = (w.clone(), acked.clone());
        tokio::spawn(async move { w.append(batch(&doc(999), &acked)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !blocked.is_finished(),
        "the writer waits while the buffer is full"
    );
    assert!(buf.stats().bytes <= 2048);

    let mut r = buf.reader();
    let got = read(&mut r, n).await;
    let per_segment = ((512 - HEADER_LEN) / rec) as usize;
    let first_segment = got.into_iter().take(per_segment).map(|(_, a)| a);
    first_segment.for_each(Ack::done);
    let res = tokio::time::timeout(Duration::from_secs(5), blocked).await;
    assert_eq!(res.unwrap().unwrap().unwrap(), Appended::Stored);
    assert_eq!(acked.load(Ordering::SeqCst), n + 1);
    assert!(buf.stats().bytes <= 2048);
    assert_eq!(read(&mut r, 1).await[0].0, doc(999));
}

#[tokio::test]
async fn a_writer_blocked_on_one_settled_segment_rolls_it_away() {
    let dir = tempfile::tempdir().unwrap();
    let o = DiskOptions {
        max_bytes: 1024,
        segment_bytes: 4096,
        ..opts()
    };
    let (buf, _) = DiskBuffer::open(dir.path(), o).unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let rec = frame_len(doc(0).len());
    let mut n = 0;
    while buf.stats().bytes + rec + HEADER_LEN <= 1024 {
        fill(&buf.writer(), n..n + 1, &acked).await;
        n += 1;
    }
    assert_eq!(segments(dir.path()).len(), 1);
    let blocked = {
        let (w, acked) = (buf.writer(), acked.clone());
        tokio::spawn(async move { w.append(batch(&doc(999), &acked)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!blocked.is_finished());
    let mut r = buf.reader();
    read(&mut r, n)
        .await
        .into_iter()
        .for_each(|(_, a)| a.done());
    let res = tokio::time::timeout(Duration::from_secs(5), blocked).await;
    assert_eq!(res.unwrap().unwrap().unwrap(), Appended::Stored);
    assert_eq!(read(&mut r, 1).await[0].0, doc(999));
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "the settled segment was deleted"
    );
}

#[tokio::test]
async fn a_full_buffer_with_drop_newest_refuses_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let o = DiskOptions {
        max_bytes: 2048,
        when_full: WhenFull::DropNewest,
        ..opts()
    };
    let (buf, _) = DiskBuffer::open(dir.path(), o).unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut stored = 0;
    let mut dropped = 0;
    for i in 0..40 {
        match buf.writer().append(batch(&doc(i), &acked)).await.unwrap() {
            Appended::Stored => stored += 1,
            Appended::Dropped { documents } => dropped += documents,
        }
    }
    assert!(
        stored > 5 && dropped > 0,
        "{stored} stored, {dropped} dropped"
    );
    assert_eq!(stored + dropped, 40);
    let s = buf.stats();
    assert_eq!(
        (s.dropped_batches, s.dropped_documents),
        (dropped as u64, dropped as u64)
    );
    assert_eq!(
        acked.load(Ordering::SeqCst),
        stored,
        "a dropped batch is not acked"
    );
    assert!(s.bytes <= 2048);
}

#[tokio::test]
async fn every_file_is_private_to_its_owner() {
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("state/buffer");
    let (buf, _) = open(&dir);
    fill(&buf.writer(), 0..10, &Arc::new(AtomicUsize::new(0))).await;
    buf.writer().close().await.unwrap();
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert!(entries.len() >= 4, "lock, acked and segments");
    for e in entries {
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", e.path().display());
    }
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (buf, _) = open(dir.path());
    let err = DiskBuffer::open(dir.path(), opts()).err().unwrap();
    assert!(matches!(err, BufferError::Locked { .. }), "{err}");
    drop(buf);
    open(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_and_a_reader_run_together() {
    let dir = tempfile::tempdir().unwrap();
    let o = DiskOptions {
        max_bytes: 8192,
        sync: SyncPolicy::Interval,
        ..opts()
    };
    let (buf, _) = DiskBuffer::open(dir.path(), o).unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (w, acked) = (buf.writer(), acked.clone());
        tokio::spawn(async move {
            fill(&w, 0..300, &acked).await;
            w.close().await.unwrap();
        })
    };
    let mut r = buf.reader();
    let mut seen = Vec::new();
    while let Some(mut b) = r.next().await {
        seen.push(String::from_utf8(b.doc(0).to_vec()).unwrap());
        b.acks.pop().unwrap().done();
    }
    writer.await.unwrap();
    assert_eq!(seen, (0..300).map(doc).collect::<Vec<_>>());
    assert_eq!(acked.load(Ordering::SeqCst), 300);
    assert_eq!(buf.stats().records, 0);
    assert_eq!(segments(dir.path()).len(), 1);
}

#[tokio::test]
async fn stats_track_documents_and_the_oldest_record() {
    let dir = tempfile::tempdir().unwrap();
    let (buf, _) = open(dir.path());
    let before = super::now_ms();
    let mut b = batch("{}", &Arc::new(AtomicUsize::new(0)));
    b.docs.extend_from_slice(b"{\"a\":1}");
    b.ends.push(b.docs.len());
    buf.writer().append(b).await.unwrap();
    let s = buf.stats();
    assert_eq!((s.records, s.documents), (1, 2));
    assert!(s.oldest_appended_ms.is_some_and(|t| t >= before));
    let mut r = buf.reader();
    let got = r.next().await.unwrap();
    assert_eq!(got.doc(1), b"{\"a\":1}");
    assert!(format::check_record(&[]).is_none());
}

#[tokio::test]
async fn forward_feeds_an_output_channel_whose_acks_settle_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let (buf, _) = open(dir.path());
    let acked = Arc::new(AtomicUsize::new(0));
    fill(&buf.writer(), 0..12, &acked).await;
    buf.writer().close().await.unwrap();
    let (tx, rx) = flume::bounded(2);
    let fwd = tokio::spawn(buf.reader().forward(tx));
    let mut n = 0;
    while let Ok(mut b) = rx.recv_async().await {
        assert_eq!(b.doc(0), doc(n).as_bytes());
        b.acks.pop().unwrap().done();
        n += 1;
    }
    fwd.await.unwrap();
    assert_eq!((n, buf.stats().records), (12, 0));
}
