//! Append-only persistence of the controller state: one JSON line per change, compacted into a
//! fresh file (written aside, then renamed) at start and when it grows.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Injections;
use crate::model::{Job, JobRun};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Job(Box<Job>),
    Run { id: u32, run: Box<JobRun> },
    Inject(Injections),
    Clock(f64),
}

/// What a journal replays to.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Jobs by id.
    pub jobs: BTreeMap<u32, Job>,
    /// Last injections, if any were recorded.
    pub inject: Option<Injections>,
    /// Latest simulated time seen.
    pub clock: f64,
    /// Lines that could not be read (a crash mid-write leaves at most one).
    pub bad_lines: usize,
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl Journal {
    /// Replays `<dir>/journal.jsonl`, compacts it and opens it for appending.
    pub fn open(dir: &Path) -> std::io::Result<(Journal, Replayed)> {
        let path = dir.join("journal.jsonl");
        let mut replayed = Replayed::default();
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else {
                    replayed.bad_lines += 1;
                    continue;
                };
                match serde_json::from_str::<Entry>(&line) {
                    Ok(Entry::Job(job)) => {
                        replayed.clock = replayed.clock.max(job.submit_time);
                        replayed.jobs.insert(job.id, *job);
                    }
                    Ok(Entry::Run { id, run }) => {
                        if let Some(job) = replayed.jobs.get_mut(&id) {
                            for t in [run.start_time, run.end_time, run.term_sent]
                                .into_iter()
                                .flatten()
                            {
                                replayed.clock = replayed.clock.max(t);
                            }
                            job.run = *run;
                        }
                    }
                    Ok(Entry::Inject(i)) => replayed.inject = Some(i),
                    Ok(Entry::Clock(t)) => replayed.clock = replayed.clock.max(t),
                    Err(_) => replayed.bad_lines += 1,
                }
            }
        }
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            // The journal holds every job's environment: its owner's alone.
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?
        };
        let mut journal = Journal {
            path,
            file,
            lines: 0,
        };
        journal.compact(
            replayed.jobs.values(),
            replayed.inject.as_ref(),
            replayed.clock,
        )?;
        Ok((journal, replayed))
    }

    fn append(&mut self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write per entry on an O_APPEND file: a crash leaves at most a torn last line.
        self.file.write_all(&line)?;
        self.lines += 1;
        Ok(())
    }

    /// Records a new job.
    pub fn job(&mut self, job: &Job) -> std::io::Result<()> {
        self.append(&Entry::Job(Box::new(job.clone())))
    }

    /// Records a job's changed run state.
    pub fn run(&mut self, job: &Job) -> std::io::Result<()> {
        self.append(&Entry::Run {
            id: job.id,
            run: Box::new(job.run.clone()),
        })
    }

    /// Records the injections.
    pub fn inject(&mut self, inject: &Injections) -> std::io::Result<()> {
        self.append(&Entry::Inject(inject.clone()))
    }

    /// Whether the journal has grown enough to be worth compacting.
    pub fn wants_compaction(&self, jobs: usize) -> bool {
        self.lines > 3 * jobs + 20_000
    }

    /// Rewrites the journal as one line per job.
    pub fn compact<'a>(
        &mut self,
        jobs: impl Iterator<Item = &'a Job>,
        inject: Option<&Injections>,
        clock: f64,
    ) -> std::io::Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out = std::io::BufWriter::new(crate::users::private_file(&tmp)?);
        let mut lines = 0;
        for job in jobs {
            serde_json::to_writer(&mut out, &Entry::Job(Box::new(job.clone())))
                .map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            lines += 1;
        }
        if let Some(i) = inject {
            serde_json::to_writer(&mut out, &Entry::Inject(i.clone()))
                .map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            lines += 1;
        }
        serde_json::to_writer(&mut out, &Entry::Clock(clock)).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = lines + 1;
        Ok(())
    }
}
