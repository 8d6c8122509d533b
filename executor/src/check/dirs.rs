//! The directories batchci writes: absolute, there or creatable, owned and open as they
//! should be, writable by batchci's user and reachable by the user its commands run as.
//!
//! Nothing is created: a check changes nothing. Permissions are judged from the mode bits
//! (and, for batchci's own user, by the kernel's `access`); ACLs are not read.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Gid, Uid, User, access};

use super::{Located, Status};
use crate::command::RunAs;

/// The builds directory of a runner without `builds_dir`, as `batchci run` chooses it.
pub(crate) fn default_builds_dir() -> PathBuf {
    std::env::temp_dir().join("batchci-builds")
}

/// What a directory is for, and who else must get into it.
pub(crate) struct DirCheck<'a> {
    /// The directory.
    pub(crate) path: &'a Path,
    /// Its key in the configuration, `None` when it is the default.
    pub(crate) key: Option<String>,
    /// It holds job tokens: batchci's user alone may read what is inside (`state_dir`).
    pub(crate) private: bool,
    /// The user scheduler commands and git run as, who must reach into it.
    pub(crate) reach: Option<(&'a str, RunAs)>,
}

/// The name of user `uid`, or the number when it has none.
fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |user| user.name)
}

/// Who batchci runs as, by name.
pub(crate) fn own_user() -> String {
    user_name(Uid::effective().as_raw())
}

/// `owner NAME, mode 0755`.
fn described(metadata: &std::fs::Metadata) -> String {
    format!(
        "owner {}, mode {:04o}",
        user_name(metadata.uid()),
        metadata.permissions().mode() & 0o7777
    )
}

/// Judges `dir`.
pub(crate) fn check(dir: &DirCheck<'_>, at: &Located<'_>) -> (Status, String) {
    let path = dir.path;
    let me = own_user();
    let locate = |message: String| match &dir.key {
        Some(key) => at.at(key, message),
        None => message,
    };
    if !path.is_absolute() {
        return (
            Status::Error,
            locate(format!(
                "`{}` is relative; write an absolute path (a relative one depends on the working directory, which differs between `batchci check`, `batchci run` and a service manager)",
                path.display()
            )),
        );
    }
    let Some((existing, metadata)) = nearest_existing(path) else {
        return (
            Status::Error,
            locate(format!("`{}`: no part of it can be read", path.display())),
        );
    };
    if !metadata.is_dir() {
        return (
            Status::Error,
            locate(format!(
                "`{}` is not a directory ({})",
                existing.display(),
                described(&metadata)
            )),
        );
    }
    if let Some((name, run_as)) = &dir.reach
        && let Some(blocked) = unreachable_part(path, run_as)
    {
        return (
            Status::Error,
            locate(format!(
                "user {name}, whom commands run as, cannot reach `{}`: `{}` does not let it in ({})",
                path.display(),
                blocked.0.display(),
                described(&blocked.1)
            )),
        );
    }
    let writable = access(&existing, AccessFlags::W_OK | AccessFlags::X_OK).is_ok();
    if existing != path {
        if !writable {
            return (
                Status::Error,
                locate(format!(
                    "`{}` does not exist and {me} cannot create it: `{}` is not writable by {me} ({})",
                    path.display(),
                    existing.display(),
                    described(&metadata)
                )),
            );
        }
        return (
            Status::Ok,
            format!(
                "`{}` does not exist yet; {me} can create it in `{}`",
                path.display(),
                existing.display()
            ),
        );
    }
    if !writable {
        return (
            Status::Error,
            locate(format!(
                "`{}` is not writable by {me} ({})",
                path.display(),
                described(&metadata)
            )),
        );
    }
    let mode = metadata.permissions().mode();
    if metadata.uid() != Uid::effective().as_raw() && dir.private {
        return (
            Status::Warning,
            locate(format!(
                "`{}` is owned by {}, not by {me}, who keeps job tokens in it",
                path.display(),
                user_name(metadata.uid())
            )),
        );
    }
    if dir.private {
        let records = path.join("submissions");
        if let Ok(inner) = std::fs::metadata(&records)
            && inner.permissions().mode() & 0o077 != 0
        {
            return (
                Status::Warning,
                format!(
                    "`{}` holds job tokens and is open to other users ({}): chmod 700 it",
                    records.display(),
                    described(&inner)
                ),
            );
        }
    } else if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return (
            Status::Warning,
            locate(format!(
                "`{}` is writable by every user and has no sticky bit ({}): anyone can replace a job's checkout",
                path.display(),
                described(&metadata)
            )),
        );
    }
    (
        Status::Ok,
        format!(
            "`{}` ({}) is writable by {me}",
            path.display(),
            described(&metadata)
        ),
    )
}

/// `path` or its nearest ancestor that exists, with its metadata.
fn nearest_existing(path: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    path.ancestors()
        .find_map(|dir| std::fs::metadata(dir).ok().map(|m| (dir.to_path_buf(), m)))
}

/// The first directory on the way to `path` (itself included, as far as it exists) that
/// `run_as` may not search, judged by the mode bits: owner, then group (its primary group and
/// the groups it is a member of), then others. Root may search anything.
fn unreachable_part(path: &Path, run_as: &RunAs) -> Option<(PathBuf, std::fs::Metadata)> {
    if run_as.uid == 0 {
        return None;
    }
    let groups = groups_of(run_as);
    let mut ancestors: Vec<&Path> = path.ancestors().collect();
    ancestors.reverse();
    ancestors.into_iter().find_map(|dir| {
        let metadata = std::fs::metadata(dir).ok()?;
        let mode = metadata.permissions().mode();
        let bits = if metadata.uid() == run_as.uid {
            mode >> 6
        } else if groups.contains(&metadata.gid()) {
            mode >> 3
        } else {
            mode
        };
        (bits & 0o1 == 0).then(|| (dir.to_path_buf(), metadata))
    })
}

/// The groups of `run_as`: its group and those the group database lists its user in.
fn groups_of(run_as: &RunAs) -> Vec<u32> {
    let mut groups = vec![run_as.gid];
    if let Ok(Some(user)) = User::from_uid(Uid::from_raw(run_as.uid))
        && let Ok(name) = std::ffi::CString::new(user.name)
        && let Ok(list) = nix::unistd::getgrouplist(&name, Gid::from_raw(run_as.gid))
    {
        groups.extend(list.into_iter().map(Gid::as_raw));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(text: &str) -> (PathBuf, String) {
        (PathBuf::from("/etc/batchci/config.toml"), text.to_string())
    }

    fn judge(dir: &DirCheck<'_>) -> (Status, String) {
        let (file, text) = located("state_dir = \"state\"\n");
        check(dir, &Located::new(&file, &text))
    }

    fn plain(path: &Path) -> DirCheck<'_> {
        DirCheck {
            path,
            key: Some("state_dir".into()),
            private: false,
            reach: None,
        }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_relative_directory_is_an_error_located_in_the_file() {
        assert_eq!(
            judge(&plain(Path::new("state"))),
            (
                Status::Error,
                "/etc/batchci/config.toml:1: state_dir: `state` is relative; write an absolute path (a relative one depends on the working directory, which differs between `batchci check`, `batchci run` and a service manager)".into()
            )
        );
    }

    #[test]
    fn a_missing_directory_is_fine_when_it_can_be_created() {
        let root = tempfile::tempdir().unwrap();
        let wanted = root.path().join("a/b");
        let me = own_user();
        assert_eq!(
            judge(&plain(&wanted)),
            (
                Status::Ok,
                format!(
                    "`{}` does not exist yet; {me} can create it in `{}`",
                    wanted.display(),
                    root.path().display()
                )
            )
        );
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a"), "").unwrap();
        chmod(&root.path().join("a"), 0o644);
        let (status, detail) = judge(&plain(&root.path().join("a/b")));
        assert_eq!(status, Status::Error);
        assert_eq!(
            detail,
            format!(
                "/etc/batchci/config.toml:1: state_dir: `{}` is not a directory (owner {}, mode 0644)",
                root.path().join("a").display(),
                own_user()
            )
        );
    }

    /// Root writes anywhere: the unwritable cases need another user, and are asserted on a
    /// machine where the tests do not run as root.
    #[test]
    fn an_unwritable_directory_is_an_error_naming_owner_and_mode() {
        let root = tempfile::tempdir().unwrap();
        let locked = root.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        chmod(&locked, 0o555);
        let (status, detail) = judge(&plain(&locked.join("state")));
        let (existing, _) = judge(&plain(&locked));
        chmod(&locked, 0o755);
        if Uid::effective().is_root() {
            assert_eq!((status, existing), (Status::Ok, Status::Ok));
            return;
        }
        let me = own_user();
        assert_eq!(status, Status::Error);
        assert_eq!(
            detail,
            format!(
                "/etc/batchci/config.toml:1: state_dir: `{}` does not exist and {me} cannot create it: `{}` is not writable by {me} (owner {me}, mode 0555)",
                locked.join("state").display(),
                locked.display()
            )
        );
    }

    #[test]
    fn job_tokens_open_to_others_are_a_warning() {
        let root = tempfile::tempdir().unwrap();
        let records = root.path().join("submissions");
        std::fs::create_dir(&records).unwrap();
        chmod(&records, 0o755);
        let dir = DirCheck {
            private: true,
            ..plain(root.path())
        };
        assert_eq!(
            judge(&dir),
            (
                Status::Warning,
                format!(
                    "`{}` holds job tokens and is open to other users (owner {}, mode 0755): chmod 700 it",
                    records.display(),
                    own_user()
                )
            )
        );
        chmod(&records, 0o700);
        assert_eq!(judge(&dir).0, Status::Ok);
    }

    #[test]
    fn a_builds_directory_anyone_may_write_without_sticky_bit_is_a_warning() {
        let root = tempfile::tempdir().unwrap();
        chmod(root.path(), 0o777);
        let (status, detail) = judge(&plain(root.path()));
        assert_eq!(status, Status::Warning);
        assert!(
            detail.ends_with("mode 0777): anyone can replace a job's checkout"),
            "{detail}"
        );
        chmod(root.path(), 0o1777);
        assert_eq!(
            judge(&plain(root.path())),
            (
                Status::Ok,
                format!(
                    "`{}` (owner {}, mode 1777) is writable by {}",
                    root.path().display(),
                    own_user(),
                    own_user()
                )
            )
        );
    }

    #[test]
    fn the_run_as_user_must_be_able_to_reach_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let closed = root.path().join("closed");
        std::fs::create_dir_all(closed.join("builds")).unwrap();
        chmod(root.path(), 0o755);
        chmod(&closed, 0o700);
        let nobody = RunAs::lookup("nobody", None).expect("user nobody");
        let builds = closed.join("builds");
        let dir = DirCheck {
            reach: Some(("nobody", nobody.clone())),
            ..plain(&builds)
        };
        let (status, detail) = judge(&dir);
        assert_eq!(status, Status::Error);
        assert_eq!(
            detail,
            format!(
                "/etc/batchci/config.toml:1: state_dir: user nobody, whom commands run as, cannot reach `{}`: `{}` does not let it in (owner {}, mode 0700)",
                closed.join("builds").display(),
                closed.display(),
                own_user()
            )
        );
        let later = closed.join("later/builds");
        let not_yet = DirCheck {
            reach: Some(("nobody", nobody)),
            ..plain(&later)
        };
        assert_eq!(judge(&not_yet).0, Status::Error);
        chmod(&closed, 0o711);
        assert_eq!(judge(&dir).0, Status::Ok);
        assert_eq!(judge(&not_yet).0, Status::Ok);
    }
}
