//! Local users as the simulated cluster sees them: who is at the other end of the daemon's
//! socket (the kernel says, not the client), who may act on a job, and the files the daemon
//! makes for a job, which belong to the job's user as a real scheduler's do.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A local user: uid, primary gid and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// The uid.
    pub(crate) uid: u32,
    /// The primary gid (for a socket's peer: its effective gid when it connected).
    pub(crate) gid: u32,
    /// The user name, or the uid's digits when the user database has no name for it.
    pub(crate) name: String,
}

impl User {
    /// The process at the other end of a connected unix socket, from `SO_PEERCRED`: the
    /// credentials it had when it connected, as the kernel recorded them.
    pub(crate) fn of_peer(stream: &UnixStream) -> std::io::Result<User> {
        use std::os::fd::AsRawFd;
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `cred`, a plain C struct owned
        // here, and sets `len` to what it wrote.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast::<libc::c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if len as usize != std::mem::size_of::<libc::ucred>() {
            return Err(std::io::Error::other("short SO_PEERCRED answer"));
        }
        Ok(User {
            uid: cred.uid,
            gid: cred.gid,
            name: name_of(cred.uid),
        })
    }

    /// The user this process runs as (its effective uid and gid).
    pub(crate) fn current() -> User {
        let uid = nix::unistd::geteuid().as_raw();
        User {
            uid,
            gid: nix::unistd::getegid().as_raw(),
            name: name_of(uid),
        }
    }
}

/// The name of `uid` in the user database, or its digits (as Slurm shows a uid it cannot
/// name).
pub(crate) fn name_of(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// The name of group `gid`, or its digits when the group database has none.
pub(crate) fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// The groups a job of `name` runs with: its primary group `gid` and every group the group
/// database lists it in, as `initgroups(3)` sets them (just `gid` when the name is unknown).
pub(crate) fn groups_of(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return vec![gid];
    };
    match nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(gid)) {
        Ok(groups) if !groups.is_empty() => groups.into_iter().map(|g| g.as_raw()).collect(),
        _ => vec![gid],
    }
}

/// Whether this process runs as root: only then can it run other users' jobs and give them
/// files.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Gives a file or directory the daemon made for a job to the job's user, as a real
/// scheduler's daemons (running as root) create them. Nothing happens unless this process is
/// root and the job is another user's.
pub(crate) fn give(path: &Path, uid: u32, gid: u32) {
    if !is_root() || uid == 0 {
        return;
    }
    if let Err(error) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
        tracing::warn!(path = %path.display(), %error, "cannot give a job's file to its user");
    }
}

/// Opens `path` for appending; a file that does not exist yet is created (`0644`) and given
/// to `uid:gid` (see [`give`]), so that a line the scheduler writes first does not leave the
/// job's own file to root.
pub(crate) fn append_as(path: &Path, uid: u32, gid: u32) -> std::io::Result<File> {
    match OpenOptions::new().append(true).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .mode(0o644)
                .open(path)
                .or_else(|_| OpenOptions::new().append(true).open(path))?;
            give(path, uid, gid);
            Ok(file)
        }
        other => other,
    }
}

/// Creates (or truncates) a file only its owner may read and write (`0600`), whatever mode
/// an older file of that name had.
pub(crate) fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Sets a path's permission bits, logging (not failing) when that is impossible.
pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), %error, "cannot set permissions");
    }
}

/// Adds read and search permission for group and others to a directory (`chmod go+rx`),
/// keeping the rest of its mode.
pub(crate) fn open_up_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o055 != 0o055 {
            set_mode(path, mode | 0o055);
        }
    }
}

/// The uid owning process `pid` (the owner of `/proc/<pid>`, its effective uid), if it
/// exists.
pub(crate) fn owner_of_process(pid: i32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    if pid <= 0 {
        return None;
    }
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process_user() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = User::of_peer(&a).unwrap();
        assert_eq!(peer, User::current());
    }

    #[test]
    fn unknown_uids_are_named_by_their_digits() {
        assert_eq!(name_of(4_000_000_123), "4000000123");
        assert_eq!(
            groups_of("no-such-user-of-mock-cluster", 4_000_000_123),
            vec![4_000_000_123]
        );
        assert_eq!(groups_of("nul\0name", 7), vec![7]);
    }

    #[test]
    fn append_as_creates_a_missing_file_and_appends_to_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let me = User::current();
        {
            use std::io::Write;
            append_as(&path, me.uid, me.gid)
                .unwrap()
                .write_all(b"a\n")
                .unwrap();
            append_as(&path, me.uid, me.gid)
                .unwrap()
                .write_all(b"b\n")
                .unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
    }

    #[test]
    fn private_files_are_0600_even_when_an_older_file_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        std::fs::write(&path, "old").unwrap();
        set_mode(&path, 0o644);
        drop(private_file(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
