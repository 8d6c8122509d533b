//! Artifacts, on the executor's host: zip what the job's `artifacts: paths` match and upload it;
//! download and unpack the artifacts of the jobs this one depends on.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::backends::{JobContext, JobFailure};
use crate::job::Artifact;
use crate::trace::format;

/// Uploads one archive per artifacts entry.
pub async fn upload(ctx: &JobContext, artifacts: &[Artifact]) -> Result<(), JobFailure> {
    let Some(client) = &ctx.gitlab else {
        ctx.log
            .warning("artifacts are handled by gitlab-runner in custom executor mode");
        return Ok(());
    };
    for artifact in artifacts {
        ctx.log
            .write(format::notice("Uploading artifacts...").as_bytes());
        let root = ctx.dirs.project_dir.clone();
        let patterns = artifact.paths.clone();
        let user = ctx.files_user().cloned();
        // Found and read as the job's user: a link the job left to a file it may not read
        // stays unreadable.
        let found = tokio::task::spawn_blocking(move || {
            crate::auth::downscope::as_user_if(user.as_ref(), || {
                let mut counts = Vec::new();
                let mut files = Vec::new();
                for pattern in &patterns {
                    let matched = matching(&root, pattern);
                    counts.push((pattern.clone(), matched.len()));
                    files.extend(matched);
                }
                files.sort();
                files.dedup();
                let archive = if files.is_empty() {
                    None
                } else {
                    Some(zip_files(&root, &files)?)
                };
                Ok((counts, archive))
            })
        })
        .await
        .map_err(|e| JobFailure::system(format!("archiving artifacts failed: {e}")))?
        .map_err(|e| JobFailure::system(format!("archiving artifacts failed: {e}")))?;
        let (counts, archive) = found;
        for (pattern, count) in counts {
            ctx.log.info(&format!(
                "{pattern}: found {count} matching artifact files and directories"
            ));
        }
        let Some(archive) = archive else {
            ctx.log.warning("no files to upload");
            continue;
        };
        let name = if artifact.name.is_empty() {
            "artifacts.zip".to_string()
        } else if artifact.name.ends_with(".zip") {
            artifact.name.clone()
        } else {
            format!("{}.zip", artifact.name)
        };
        let size = archive.len();
        client
            .upload_artifacts(
                ctx.job.id,
                &ctx.job.token,
                &name,
                archive,
                Some(&artifact.expire_in),
            )
            .await
            .map_err(|e| JobFailure::system(format!("uploading artifacts failed: {e}")))?;
        ctx.log.info(&format!(
            "Uploading artifacts as \"archive\" to coordinator... 201 Created  size={size}"
        ));
    }
    Ok(())
}

/// Downloads and unpacks the dependencies' artifacts into the project directory.
pub async fn download(ctx: &JobContext) -> Result<(), JobFailure> {
    let Some(client) = &ctx.gitlab else {
        return Ok(());
    };
    for dependency in ctx
        .job
        .dependencies
        .iter()
        .filter(|d| d.artifacts_file.is_some())
    {
        ctx.log.write(
            format::notice(&format!(
                "Downloading artifacts for {} ({})...",
                dependency.name, dependency.id
            ))
            .as_bytes(),
        );
        let bytes = client
            .download_artifacts(dependency.id, &dependency.token)
            .await
            .map_err(|e| {
                JobFailure::system(format!(
                    "downloading artifacts of {} failed: {e}",
                    dependency.name
                ))
            })?;
        let target = ctx.dirs.project_dir.clone();
        let user = ctx.files_user().cloned();
        // Unpacked as the job's user: the files are the user's, and a link in the checkout
        // cannot lead the writes anywhere the user may not write.
        tokio::task::spawn_blocking(move || {
            crate::auth::downscope::as_user_if(user.as_ref(), || {
                let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                    .map_err(std::io::Error::other)?;
                archive.extract(&target).map_err(std::io::Error::other)
            })
        })
        .await
        .map_err(|e| JobFailure::system(format!("unpacking artifacts failed: {e}")))?
        .map_err(|e| {
            JobFailure::system(format!(
                "unpacking artifacts of {} into {} failed: {e}",
                dependency.name,
                ctx.dirs.project_dir.display()
            ))
        })?;
        ctx.log.info("Downloading artifacts from coordinator... ok");
    }
    Ok(())
}

/// Files and directories under `root` matching `pattern`, never leaving `root`.
fn matching(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let relative = pattern.trim_start_matches("./");
    if relative.split('/').any(|part| part == "..") || Path::new(relative).is_absolute() {
        return Vec::new();
    }
    let full = root.join(relative);
    let Ok(entries) = glob::glob(&full.to_string_lossy()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for path in entries.flatten() {
        if path.is_dir() {
            collect_tree(&path, &mut found);
        } else {
            found.push(path);
        }
    }
    found.retain(|p| p.starts_with(root));
    found
}

fn collect_tree(dir: &Path, found: &mut Vec<PathBuf>) {
    found.push(dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_tree(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn zip_files(root: &Path, files: &[PathBuf]) -> std::io::Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for path in files {
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let name = relative.to_string_lossy().into_owned();
        if path.is_dir() {
            writer
                .add_directory(name, options)
                .map_err(std::io::Error::other)?;
        } else {
            writer
                .start_file(name, options)
                .map_err(std::io::Error::other)?;
            let bytes = std::fs::read(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
            })?;
            writer.write_all(&bytes)?;
        }
    }
    Ok(writer.finish().map_err(std::io::Error::other)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_inside_the_project_only_and_round_trip_through_zip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("out/sub")).unwrap();
        std::fs::write(root.join("out/a.txt"), b"a").unwrap();
        std::fs::write(root.join("out/sub/b.txt"), b"b").unwrap();
        std::fs::write(root.join("c.log"), b"c").unwrap();

        let mut files = matching(root, "out/*");
        files.extend(matching(root, "*.log"));
        files.extend(matching(root, "../../etc/passwd"));
        files.sort();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["c.log", "out/a.txt", "out/sub", "out/sub/b.txt"]);

        let archive = zip_files(root, &files).unwrap();
        let target = tempfile::tempdir().unwrap();
        zip::ZipArchive::new(std::io::Cursor::new(archive))
            .unwrap()
            .extract(target.path())
            .unwrap();
        assert_eq!(
            std::fs::read(target.path().join("out/sub/b.txt")).unwrap(),
            b"b"
        );
        assert_eq!(std::fs::read(target.path().join("c.log")).unwrap(), b"c");
    }
}
