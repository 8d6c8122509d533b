//! Acting as the job's user: the per-user builds directory, batchci's own file work on the
//! job's behalf, and dropping what batchci holds before user code starts.
//!
//! Processes are switched in [`crate::command`]. File work (directories, file variables, the
//! step script, artifacts) happens in a thread of its own whose file-system identity (fsuid,
//! fsgid, supplementary groups) is the user's and which holds no capabilities: the kernel then
//! checks every path as it would for the user, so a symbolic link the job left cannot make
//! batchci read or write what the user may not. The thread ends with the work; no other
//! thread of batchci ever changes identity.

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::command::RunAs;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops every capability of the calling thread (effective, permitted, inheritable, and with
/// them the ambient set). Async-signal-safe: one system call, no allocation.
pub(crate) fn drop_capabilities() -> io::Result<()> {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads one header and two data structs of the declared layout.
    let result =
        unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the calling thread act as `user` on the file system: supplementary groups, fsgid,
/// fsuid, then no capabilities. For a thread that ends after its work (see [`as_user`]).
fn become_user_on_files(user: &RunAs) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = user.groups.clone();
    // The raw system call changes this thread only; glibc's setgroups() would change all.
    // SAFETY: the pointer and length describe `groups`.
    let result = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // setfsuid/setfsgid report nothing but the previous value: asked again, they say
    // whether the change took.
    nix::unistd::setfsgid(nix::unistd::Gid::from_raw(user.gid));
    nix::unistd::setfsuid(nix::unistd::Uid::from_raw(user.uid));
    let fsgid = nix::unistd::setfsgid(nix::unistd::Gid::from_raw(user.gid)).as_raw();
    let fsuid = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(user.uid)).as_raw();
    if fsuid != user.uid || fsgid != user.gid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "cannot act as {} (uid {}) on files: batchci lacks CAP_SETUID or CAP_SETGID",
                user.name, user.uid
            ),
        ));
    }
    drop_capabilities()
}

/// Runs `work` as `user` on the file system (see the module's description), in a thread of its
/// own that ends with it; the caller waits.
pub(crate) fn as_user<T: Send>(
    user: &RunAs,
    work: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                become_user_on_files(user)?;
                work()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("file work as the job's user panicked")))
    })
}

/// [`as_user`] when `user` is given, else `work` as batchci.
pub(crate) fn as_user_if<T: Send>(
    user: Option<&RunAs>,
    work: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    match user {
        Some(user) => as_user(user, work),
        None => work(),
    }
}

/// `<parent>/<user>`: the user's own directory under a shared `parent` (builds or caches),
/// created when missing, owned by the user, mode 0700. `parent` is created (0755) when
/// missing; it must let users reach their directories and must not let them replace each
/// other's. An existing entry that is a symbolic link, not a directory, or another user's is
/// refused.
pub(crate) fn ensure_user_dir(parent: &Path, user: &RunAs) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = parent.join(&user.name);
    let shown = dir.display();
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let parent_fd = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open {}: {e}", parent.display()))?;
    let parent_mode = nix::sys::stat::fstat(parent_fd.as_fd())
        .map_err(|e| format!("cannot read {}: {e}", parent.display()))?
        .st_mode;
    if parent_mode & 0o001 == 0 {
        return Err(format!(
            "{} is mode {:04o}: users cannot reach their directories in it; make it 0755 or 0711",
            parent.display(),
            parent_mode & 0o7777
        ));
    }
    if parent_mode & 0o022 != 0 && parent_mode & 0o1000 == 0 {
        return Err(format!(
            "{} is mode {:04o}: writable by other users without the sticky bit, one user could replace another's directory; make it 0755, or 1777 like /tmp",
            parent.display(),
            parent_mode & 0o7777
        ));
    }
    match nix::sys::stat::mkdirat(parent_fd.as_fd(), user.name.as_str(), Mode::S_IRWXU) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(format!("cannot create {shown}: {e}")),
    }
    let fd = nix::fcntl::openat(
        parent_fd.as_fd(),
        user.name.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => {
            format!("{shown} is a symbolic link or not a directory: refusing to use it")
        }
        e => format!("cannot open {shown}: {e}"),
    })?;
    let owner = nix::sys::stat::fstat(fd.as_fd())
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .st_uid;
    // A directory of root's or of batchci's own user is one batchci made (no user could),
    // perhaps before a crash.
    let made_here = owner == 0 || owner == nix::unistd::geteuid().as_raw();
    if owner != user.uid && !made_here {
        return Err(format!(
            "{shown} belongs to uid {owner}, not to {} (uid {}): refusing to use it",
            user.name, user.uid
        ));
    }
    nix::unistd::fchown(
        fd.as_fd(),
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .map_err(|e| format!("cannot give {shown} to {}: {e}", user.name))?;
    nix::sys::stat::fchmod(fd.as_fd(), Mode::S_IRWXU)
        .map_err(|e| format!("cannot make {shown} private (0700): {e}"))?;
    // Every directory above must let the user through, not only `parent`.
    as_user(user, || std::fs::read_dir(&dir).map(drop)).map_err(|e| {
        format!(
            "{} cannot reach {shown} ({e}): a directory above it is closed to other users",
            user.name
        )
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::command::Switch;

    /// `nobody` as a job user, when this process is root; else `None`, having said loudly that
    /// the case did not run (a failure with `CI=true`).
    fn nobody(case: &str) -> Option<RunAs> {
        if nix::unistd::geteuid().is_root() {
            let user = crate::auth::mapping::LocalUser::lookup("nobody").ok()??;
            return Some(user.run_as(Switch::Setuid));
        }
        let message = format!("downscope::{case} DID NOT RUN: it needs root");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{message}, and CI=true"
        );
        eprintln!("\n!!! {message}\n");
        None
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn owner_and_mode(path: &Path) -> (u32, u32) {
        let meta = std::fs::symlink_metadata(path).unwrap();
        (meta.uid(), meta.mode() & 0o7777)
    }

    #[test]
    fn a_users_directory_is_made_theirs_and_private_and_kept_so() {
        let Some(user) = nobody("a_users_directory_is_made_theirs_and_private_and_kept_so") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let builds = dir.path().join("builds");

        let made = ensure_user_dir(&builds, &user).unwrap();

        assert_eq!(made, builds.join("nobody"));
        assert_eq!(owner_and_mode(&builds).1, 0o755);
        assert_eq!(owner_and_mode(&made), (user.uid, 0o700));
        // Loosened by its user, it is private again at the next job.
        chmod(&made, 0o755);
        assert_eq!(ensure_user_dir(&builds, &user).unwrap(), made);
        assert_eq!(owner_and_mode(&made), (user.uid, 0o700));
    }

    #[test]
    fn links_other_users_directories_and_unsafe_parents_are_refused() {
        let Some(user) = nobody("links_other_users_directories_and_unsafe_parents_are_refused")
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let builds = dir.path().join("builds");
        std::fs::create_dir(&builds).unwrap();
        let theirs = builds.join("nobody");

        std::os::unix::fs::symlink("/etc", &theirs).unwrap();
        assert_eq!(
            ensure_user_dir(&builds, &user).unwrap_err(),
            format!(
                "{} is a symbolic link or not a directory: refusing to use it",
                theirs.display()
            )
        );
        assert_eq!(owner_and_mode(Path::new("/etc")).0, 0);

        std::fs::remove_file(&theirs).unwrap();
        std::fs::create_dir(&theirs).unwrap();
        nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(1)), None).unwrap();
        assert_eq!(
            ensure_user_dir(&builds, &user).unwrap_err(),
            format!(
                "{} belongs to uid 1, not to nobody (uid {}): refusing to use it",
                theirs.display(),
                user.uid
            )
        );
        std::fs::remove_dir(&theirs).unwrap();

        chmod(&builds, 0o777);
        assert_eq!(
            ensure_user_dir(&builds, &user).unwrap_err(),
            format!(
                "{} is mode 0777: writable by other users without the sticky bit, one user could replace another's directory; make it 0755, or 1777 like /tmp",
                builds.display()
            )
        );
        chmod(&builds, 0o1777);
        assert!(ensure_user_dir(&builds, &user).is_ok());
        std::fs::remove_dir(&theirs).unwrap();

        chmod(&builds, 0o700);
        assert_eq!(
            ensure_user_dir(&builds, &user).unwrap_err(),
            format!(
                "{} is mode 0700: users cannot reach their directories in it; make it 0755 or 0711",
                builds.display()
            )
        );

        chmod(&builds, 0o755);
        chmod(dir.path(), 0o700);
        let error = ensure_user_dir(&builds, &user).unwrap_err();
        assert_eq!(
            error,
            format!(
                "nobody cannot reach {} (Permission denied (os error 13)): a directory above it is closed to other users",
                theirs.display()
            )
        );
    }

    #[test]
    fn file_work_as_the_user_cannot_read_what_the_user_may_not_and_writes_the_users_files() {
        let Some(user) = nobody(
            "file_work_as_the_user_cannot_read_what_the_user_may_not_and_writes_the_users_files",
        ) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let builds = dir.path().join("builds");
        let home = ensure_user_dir(&builds, &user).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root only").unwrap();
        chmod(&secret, 0o600);
        // A link the job left, to a file only root may read.
        let link = home.join("artifact");
        std::os::unix::fs::symlink(&secret, &link).unwrap();

        let read = as_user(&user, || std::fs::read(&link));
        let written = as_user(&user, || std::fs::write(home.join("made"), "x"));

        assert_eq!(
            read.unwrap_err().kind(),
            std::io::ErrorKind::PermissionDenied
        );
        written.unwrap();
        assert_eq!(owner_and_mode(&home.join("made")).0, user.uid);
        // The thread that acted as the user is gone; this one is still root.
        assert_eq!(std::fs::read(&link).unwrap(), b"root only");
    }
}
