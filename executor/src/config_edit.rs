//! Changing `config.toml` in place: removing a runner's entry, writing a runner's new token.
//!
//! The file is an admin's: comments, key order, blank lines and layout stay as they were; only
//! the entry or the keys changed are touched. The edited text must still load as a
//! [`Config`] before anything is written, and it replaces the file atomically (a temporary
//! file in the same directory with the file's mode and owner, fsync, rename), so a crash leaves
//! the old file or the new one, never half of one. A symbolic link is followed: the file it
//! points to is replaced, the link stays.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, TableLike, Value};

use crate::config::{Config, ConfigError};

/// Why the configuration could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a configuration batchci loads (the edit would not fix it).
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// No `[[runners]]` entry has that name.
    #[error("{}: no runner is named `{name}`{}", path.display(), known_names(name, known))]
    NoSuchRunner {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names the file has.
        known: Vec<String>,
    },
    /// The new file could not be written; the old one is unchanged.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

fn known_names(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        return "; it has no [[runners]]".to_string();
    }
    let listed: Vec<String> = known.iter().map(|n| format!("`{n}`")).collect();
    let mut text = format!("; its runners are {}", listed.join(", "));
    if let Some(near) = crate::config::nearest(name, known.iter().map(String::as_str)) {
        text.push_str(&format!("; did you mean `{near}`?"));
    }
    text
}

/// A configuration file, read and ready to be edited.
#[derive(Debug)]
pub struct ConfigFile {
    /// The path given (shown in messages).
    path: PathBuf,
    /// The file written: `path` with symbolic links resolved.
    target: PathBuf,
    document: DocumentMut,
}

/// A temporary file beside the configuration, made before GitLab is asked to change anything:
/// a directory batchci cannot write to is found while the old token still works. Removed when
/// dropped unless [`ConfigFile::commit`] renamed it over the file.
#[derive(Debug)]
pub struct PendingWrite {
    temporary: PathBuf,
    file: Option<std::fs::File>,
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

impl ConfigFile {
    /// Reads `path`, which must load as a configuration.
    pub fn open(path: &Path) -> Result<ConfigFile, EditError> {
        let read = |source| EditError::Read {
            path: path.to_path_buf(),
            source,
        };
        let target = std::fs::canonicalize(path).map_err(read)?;
        let text = std::fs::read_to_string(&target).map_err(read)?;
        Config::parse(path, &text)?;
        // It parsed as a Config, so it is TOML; the error branch is for the impossible case.
        let document = text.parse::<DocumentMut>().map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: e.to_string(),
        })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            target,
            document,
        })
    }

    /// The file as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the `[[runners]]` entries, in file order.
    pub fn runner_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        match self.document.get("runners") {
            Some(Item::ArrayOfTables(tables)) => {
                for table in tables.iter() {
                    names.extend(table.get("name").and_then(Item::as_str).map(str::to_string));
                }
            }
            Some(Item::Value(Value::Array(items))) => {
                for item in items.iter() {
                    names.extend(
                        item.as_inline_table()
                            .and_then(|t| t.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    );
                }
            }
            _ => {}
        }
        names
    }

    fn no_such_runner(&self, name: &str) -> EditError {
        EditError::NoSuchRunner {
            path: self.path.clone(),
            name: name.to_string(),
            known: self.runner_names(),
        }
    }

    fn index_of(&self, name: &str) -> Result<usize, EditError> {
        self.runner_names()
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| self.no_such_runner(name))
    }

    /// Removes the entry of runner `name`, with its sub-tables (`[runners.batch]`, ...) and the
    /// comments written above it.
    pub fn remove_runner(&mut self, name: &str) -> Result<(), EditError> {
        let index = self.index_of(name)?;
        match self.document.get_mut("runners") {
            Some(Item::ArrayOfTables(tables)) => {
                tables.remove(index);
            }
            Some(Item::Value(Value::Array(items))) => {
                items.remove(index);
            }
            _ => return Err(self.no_such_runner(name)),
        }
        Ok(())
    }

    /// Sets runner `name`'s `token` (and `token_obtained_at` = `obtained_at`), and its
    /// `token_expires_at`: written when GitLab gave an expiry, removed when it gave none. A
    /// value already in the file keeps its place and any comment after it.
    pub fn set_token(
        &mut self,
        name: &str,
        token: &str,
        expires_at: Option<toml_edit::Datetime>,
        obtained_at: toml_edit::Datetime,
    ) -> Result<(), EditError> {
        let index = self.index_of(name)?;
        let entry: &mut dyn TableLike = match self.document.get_mut("runners") {
            Some(Item::ArrayOfTables(tables)) => match tables.get_mut(index) {
                Some(table) => table,
                None => return Err(self.no_such_runner(name)),
            },
            Some(Item::Value(Value::Array(items))) => {
                match items.get_mut(index).and_then(Value::as_inline_table_mut) {
                    Some(table) => table,
                    None => return Err(self.no_such_runner(name)),
                }
            }
            _ => return Err(self.no_such_runner(name)),
        };
        set_value(entry, "token", Value::from(token));
        set_value(entry, "token_obtained_at", Value::from(obtained_at));
        match expires_at {
            Some(at) => set_value(entry, "token_expires_at", Value::from(at)),
            None => {
                entry.remove("token_expires_at");
            }
        }
        Ok(())
    }

    /// The text the file would have now.
    pub fn text(&self) -> String {
        self.document.to_string()
    }

    /// Makes the temporary file the new text will go to (see [`PendingWrite`]).
    pub fn prepare(&self) -> Result<PendingWrite, EditError> {
        use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
        let failed = |source| EditError::Write {
            path: self.path.clone(),
            source,
        };
        let metadata = std::fs::metadata(&self.target).map_err(failed)?;
        let directory = self.target.parent().unwrap_or(Path::new("/"));
        let file_name = self
            .target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.toml".into());
        let temporary = directory.join(format!(".{file_name}.batchci-{}", std::process::id()));
        let mode = metadata.mode() & 0o7777;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)
            .map_err(failed)?;
        let pending = PendingWrite {
            temporary,
            file: Some(file),
        };
        if let Some(file) = &pending.file {
            // The umask may have taken bits away; the owner is kept where batchci may set it
            // (as root), and is batchci's own otherwise.
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(failed)?;
            let _ = std::os::unix::fs::fchown(file, Some(metadata.uid()), Some(metadata.gid()));
        }
        Ok(pending)
    }

    /// Checks that the text loads as a configuration, writes it to `pending` and renames that
    /// over the file.
    pub fn commit(&self, mut pending: PendingWrite) -> Result<(), EditError> {
        let text = self.text();
        Config::parse(&self.path, &text)?;
        let failed = |source| EditError::Write {
            path: self.path.clone(),
            source,
        };
        let Some(mut file) = pending.file.take() else {
            return Err(failed(std::io::Error::other("the temporary file is gone")));
        };
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&pending.temporary, &self.target));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&pending.temporary);
            return Err(failed(error));
        }
        if let Some(directory) = self.target.parent()
            && let Ok(directory) = std::fs::File::open(directory)
        {
            let _ = directory.sync_all();
        }
        Ok(())
    }

    /// [`prepare`](Self::prepare) and [`commit`](Self::commit) in one.
    pub fn save(&self) -> Result<(), EditError> {
        self.commit(self.prepare()?)
    }
}

/// Sets `key` to `value`, keeping the place and the comments of a value already there.
fn set_value(entry: &mut dyn TableLike, key: &str, mut value: Value) {
    match entry.get_mut(key) {
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        _ => {
            entry.insert(key, Item::Value(value));
        }
    }
}

/// A time from GitLab's API (`2026-11-23T18:00:01.123Z`) as a TOML datetime, to the second.
pub fn toml_datetime(time: chrono::DateTime<chrono::Utc>) -> toml_edit::Datetime {
    let text = time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Always a valid offset datetime: chrono wrote it in RFC 3339.
    text.parse().unwrap_or(toml_edit::Datetime {
        date: None,
        time: None,
        offset: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"# batchci on the login node
concurrent = 4   # all runners together
check_interval = 3

# The production cluster.
[[runners]]
name = "cluster-a"
url = "https://gitlab.example.com"
token = "glrt-aaaaaaaaaaaa"   # rotated monthly
executor = "slurm"
  [runners.batch]
  arguments_variable = ["SCHEDULER_PARAMETERS"]

# The test partition.
[[runners]]
name = "cluster-b"
url = "https://gitlab.example.com"
token = "glrt-bbbbbbbbbbbb"
token_expires_at = 2020-01-01T00:00:00Z
executor = "shell"
limit = 2
"#;

    fn file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn time(text: &str) -> toml_edit::Datetime {
        text.parse().unwrap()
    }

    #[test]
    fn removing_a_runner_takes_its_tables_and_comment_and_keeps_the_rest_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), CONFIG);

        let mut config = ConfigFile::open(&path).unwrap();
        config.remove_runner("cluster-a").unwrap();
        config.save().unwrap();

        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"# batchci on the login node
concurrent = 4   # all runners together
check_interval = 3

# The test partition.
[[runners]]
name = "cluster-b"
url = "https://gitlab.example.com"
token = "glrt-bbbbbbbbbbbb"
token_expires_at = 2020-01-01T00:00:00Z
executor = "shell"
limit = 2
"#
        );
    }

    #[test]
    fn a_new_token_replaces_the_old_in_place_and_the_expiry_follows_gitlab() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), CONFIG);

        let mut config = ConfigFile::open(&path).unwrap();
        config
            .set_token(
                "cluster-a",
                "glrt-newAAAAAAAAA",
                Some(time("2026-12-01T10:00:00Z")),
                time("2026-11-01T10:00:00Z"),
            )
            .unwrap();
        config
            .set_token(
                "cluster-b",
                "glrt-newBBBBBBBBB",
                None,
                time("2026-11-01T10:00:00Z"),
            )
            .unwrap();
        config.save().unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"# batchci on the login node
concurrent = 4   # all runners together
check_interval = 3

# The production cluster.
[[runners]]
name = "cluster-a"
url = "https://gitlab.example.com"
token = "glrt-newAAAAAAAAA"   # rotated monthly
executor = "slurm"
token_obtained_at = 2026-11-01T10:00:00Z
token_expires_at = 2026-12-01T10:00:00Z
  [runners.batch]
  arguments_variable = ["SCHEDULER_PARAMETERS"]

# The test partition.
[[runners]]
name = "cluster-b"
url = "https://gitlab.example.com"
token = "glrt-newBBBBBBBBB"
executor = "shell"
limit = 2
token_obtained_at = 2026-11-01T10:00:00Z
"#
        );
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded.runners[0].token, "glrt-newAAAAAAAAA");
        assert_eq!(loaded.runners[1].token_expires_at, None);
    }

    #[test]
    fn the_file_keeps_its_mode_and_a_symbolic_link_keeps_pointing_at_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let real = file(dir.path(), CONFIG);
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();

        let mut config = ConfigFile::open(&link).unwrap();
        config.remove_runner("cluster-b").unwrap();
        config.save().unwrap();

        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert_eq!(Config::load(&real).unwrap().runners.len(), 1);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
    }

    #[test]
    fn an_unknown_name_lists_the_runners_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), CONFIG);

        let mut config = ConfigFile::open(&path).unwrap();
        let error = config.remove_runner("cluster-c").unwrap_err();

        assert_eq!(
            error.to_string(),
            format!(
                "{}: no runner is named `cluster-c`; its runners are `cluster-a`, `cluster-b`; did you mean `cluster-a`?",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CONFIG);
    }

    #[test]
    fn a_file_that_does_not_load_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let broken = CONFIG.replace("limit = 2", "limt = 2");
        let path = file(dir.path(), &broken);

        let error = ConfigFile::open(&path).unwrap_err();

        assert_eq!(
            error.to_string(),
            format!(
                "{}:21: runners[1].limt: unknown key `limt`; did you mean `limit`?",
                path.display()
            )
        );
    }

    #[test]
    fn runners_written_as_an_inline_array_are_edited_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "runners = [\n  { name = \"a\", url = \"https://g.example\", token = \"glrt-1\", executor = \"shell\" },\n  { name = \"b\", url = \"https://g.example\", token = \"glrt-2\", executor = \"shell\" },\n]\n",
        );

        let mut config = ConfigFile::open(&path).unwrap();
        config.remove_runner("a").unwrap();
        config
            .set_token("b", "glrt-3", None, time("2026-11-01T10:00:00Z"))
            .unwrap();
        config.save().unwrap();

        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded.runners.len(), 1);
        assert_eq!(loaded.runners[0].token, "glrt-3");
    }

    #[test]
    fn when_the_new_file_cannot_be_made_the_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), CONFIG);
        // Something already holds the temporary file's name.
        let taken = dir
            .path()
            .join(format!(".config.toml.batchci-{}", std::process::id()));
        std::fs::create_dir(&taken).unwrap();

        let mut config = ConfigFile::open(&path).unwrap();
        config.remove_runner("cluster-a").unwrap();
        let error = config.save().unwrap_err();

        assert_eq!(
            error.to_string(),
            format!("cannot write {}: File exists (os error 17)", path.display())
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CONFIG);
        assert!(taken.is_dir());
    }
}
