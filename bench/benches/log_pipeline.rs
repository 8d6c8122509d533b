//! The executor's log pipeline: masking, the trace buffer (masking + UTF-8 repair + limit +
//! checksum), and following an output file the way batch backends do.
//!
//! `cargo bench -p bench --bench log_pipeline`

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use batchci::tail::{Drain, TailOptions, follow};
use batchci::trace::{Masker, TraceBuffer};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Typical build output: compiler lines, some of them mentioning paths and variables.
fn build_output(bytes: usize) -> Vec<u8> {
    let lines = [
        "   Compiling serde v1.0.228\n",
        "gcc -O2 -c src/solver.c -o build/solver.o -I/opt/spack/include\n",
        "[ 42%] Building CXX object CMakeFiles/app.dir/main.cpp.o\n",
        "test result: ok. 57 passed; 0 failed; 0 ignored\n",
        "export TOKEN=not-the-secret value=7\n",
    ];
    let mut out = Vec::with_capacity(bytes);
    let mut n = 0;
    while out.len() < bytes {
        out.extend_from_slice(lines[n % lines.len()].as_bytes());
        n += 1;
    }
    out.truncate(bytes);
    out
}

fn secrets(count: usize) -> Vec<String> {
    (0..count)
        .map(|n| format!("s3cr3t-{n:04}-VALUE-xyz"))
        .collect()
}

fn masking(c: &mut Criterion) {
    let input = build_output(4 << 20);
    let mut group = c.benchmark_group("mask");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for count in [1, 10, 100] {
        let values = secrets(count);
        group.bench_with_input(BenchmarkId::new("secrets", count), &values, |b, values| {
            b.iter(|| {
                let mut masker = Masker::for_job(values, Vec::<String>::new());
                let mut out = Vec::with_capacity(input.len());
                for chunk in input.chunks(64 * 1024) {
                    masker.push(chunk, &mut out);
                }
                masker.finish(&mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn trace_buffer(c: &mut Criterion) {
    let input = build_output(4 << 20);
    let mut group = c.benchmark_group("trace_buffer");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for chunk in [4 * 1024, 64 * 1024] {
        group.bench_with_input(BenchmarkId::new("chunk", chunk), &chunk, |b, &chunk| {
            b.iter(|| {
                let masker = Masker::for_job(secrets(10), Vec::<String>::new());
                let mut buffer = TraceBuffer::new(masker, 64 << 20);
                for piece in input.chunks(chunk) {
                    buffer.write(piece);
                }
                buffer.finish();
                black_box(buffer.checksum())
            })
        });
    }
    group.finish();
}

/// A writer produces 16 MiB into a file while `follow` tails it; measures end-to-end time.
fn tailing(c: &mut Criterion) {
    let size = 16usize << 20;
    let line = build_output(4096);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("tail");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("16MiB_file", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("slurm-1.out");
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let writer_path = path.clone();
            let chunk = line.clone();
            let writer = std::thread::spawn(move || {
                let mut file = std::fs::File::create(&writer_path).expect("create");
                let mut written = 0;
                while written < size {
                    file.write_all(&chunk).expect("write");
                    written += chunk.len();
                }
                drop(file);
                let _ = done_tx.send(());
            });
            let options = TailOptions {
                poll_interval: Duration::from_millis(50),
                nfs_timeout: Duration::from_secs(5),
                settle: Duration::from_millis(1),
                ..TailOptions::default()
            };
            let mut seen = 0usize;
            runtime.block_on(follow(
                &path,
                |bytes| seen += bytes.len(),
                async {
                    let _ = done_rx.await;
                    Drain::UntilSettled
                },
                &options,
            ));
            writer.join().expect("writer");
            assert_eq!(seen, size.div_ceil(line.len()) * line.len());
        })
    });
    group.finish();
}

criterion_group!(benches, masking, trace_buffer, tailing);
criterion_main!(benches);
