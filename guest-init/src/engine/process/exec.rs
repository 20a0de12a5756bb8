//! Finding `process.args[0]` before the exec, so that a missing program is a
//! create-time error with runc's wording (runc uses Go's exec.LookPath) and
//! the shell's exit codes: 127 for "not found", 126 for "found but cannot
//! be executed" (bash(1), EXIT STATUS; what podman and docker map runc's
//! messages to).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::PreparedProcess;
use crate::engine::syscall::describe;

/// The shell's exit status for a command that was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
/// The shell's exit status for a command that could not be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("exec: {name:?}: executable file not found in $PATH")]
    NotInPath { name: String },
    #[error("exec: {name:?}: stat {name}: {reason}")]
    Stat { name: String, reason: String },
    #[error("exec: {name:?}: is a directory")]
    IsDirectory { name: String },
    #[error("exec: {name:?}: permission denied")]
    PermissionDenied { name: String },
}

impl ExecError {
    /// The exit status a shell would give.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NotInPath { .. } => EXIT_NOT_FOUND,
            ExecError::Stat { reason, .. } if reason == "No such file or directory" => {
                EXIT_NOT_FOUND
            }
            ExecError::Stat { .. } => EXIT_CANNOT_EXECUTE,
            ExecError::IsDirectory { .. } | ExecError::PermissionDenied { .. } => {
                EXIT_CANNOT_EXECUTE
            }
        }
    }
}

enum Candidate {
    Executable,
    Missing(String),
    Directory,
    NotExecutable,
}

fn check(path: &Path) -> Candidate {
    match std::fs::metadata(path) {
        Err(error) => Candidate::Missing(describe(&error)),
        Ok(metadata) if metadata.is_dir() => Candidate::Directory,
        Ok(metadata) if metadata.permissions().mode() & 0o111 != 0 => Candidate::Executable,
        Ok(_) => Candidate::NotExecutable,
    }
}

/// Finds `name` as exec.LookPath does: a name with a slash is checked as it
/// is; otherwise each directory of `path_variable` (the container's PATH)
/// is tried in order and the first executable file wins. `root` is "/" in
/// the container (tests point it elsewhere); the result is a container path.
pub fn find_executable(
    name: &str,
    path_variable: Option<&str>,
    root: &Path,
) -> Result<PathBuf, ExecError> {
    // Relative names stay relative to the working directory, as for execve.
    let in_root = |path: &Path| match path.strip_prefix("/") {
        Ok(inside) => root.join(inside),
        Err(_) => path.to_path_buf(),
    };
    if name.contains('/') {
        return match check(&in_root(Path::new(name))) {
            Candidate::Executable => Ok(PathBuf::from(name)),
            Candidate::Missing(reason) => Err(ExecError::Stat {
                name: name.to_owned(),
                reason,
            }),
            Candidate::Directory => Err(ExecError::IsDirectory {
                name: name.to_owned(),
            }),
            Candidate::NotExecutable => Err(ExecError::PermissionDenied {
                name: name.to_owned(),
            }),
        };
    }
    for directory in path_variable.unwrap_or_default().split(':') {
        // An empty PATH entry means the current directory (execvp(3)).
        let directory = if directory.is_empty() { "." } else { directory };
        let candidate = Path::new(directory).join(name);
        if let Candidate::Executable = check(&in_root(&candidate)) {
            return Ok(candidate);
        }
    }
    Err(ExecError::NotInPath {
        name: name.to_owned(),
    })
}

/// The program of a prepared process as the process itself would find it:
/// `args[0]` in the container's root, through its own PATH.
pub fn find_program(prepared: &PreparedProcess) -> Result<PathBuf, ExecError> {
    let name = prepared
        .args
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    find_executable(name, env_value(&prepared.env, "PATH"), Path::new("/"))
}

/// The value of `name` in a NAME=VALUE list.
pub fn env_value<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|variable| variable.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::engine::test_bundle::TestDir;

    /// A root with /bin and /usr/bin holding scripts, some of them not
    /// executable.
    fn root_with_programs(name: &str) -> TestDir {
        let root = TestDir::new(name);
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        let write = |relative: &str, mode: u32| {
            let file = root.join(relative);
            fs::write(&file, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        };
        write("bin/plain", 0o644);
        write("usr/bin/plain", 0o755);
        write("usr/bin/tool", 0o755);
        write("data", 0o644);
        root
    }

    #[test]
    fn path_search_skips_non_executables() {
        let root = root_with_programs("exec-search");
        let found = find_executable("plain", Some("/bin:/usr/bin"), root.path()).unwrap();
        assert_eq!(found, Path::new("/usr/bin/plain"));
    }

    #[test]
    fn not_in_path_is_runcs_message_and_127() {
        let root = root_with_programs("exec-missing");
        let error = find_executable("foo", Some("/bin:/usr/bin"), root.path()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "exec: \"foo\": executable file not found in $PATH"
        );
        assert_eq!(error.exit_code(), 127);
        let error = find_executable("tool", None, root.path()).unwrap_err();
        assert_eq!(error.exit_code(), 127, "no PATH means nothing is searched");
    }

    #[test]
    fn explicit_paths_are_checked_as_they_are() {
        let root = root_with_programs("exec-explicit");
        assert_eq!(
            find_executable("/usr/bin/tool", None, root.path()).unwrap(),
            Path::new("/usr/bin/tool")
        );
        let error = find_executable("/data", None, root.path()).unwrap_err();
        assert_eq!(error.to_string(), "exec: \"/data\": permission denied");
        assert_eq!(error.exit_code(), 126);
        let error = find_executable("/nope", None, root.path()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "exec: \"/nope\": stat /nope: No such file or directory"
        );
        assert_eq!(error.exit_code(), 127);
        let error = find_executable("/bin", None, root.path()).unwrap_err();
        assert_eq!(error.exit_code(), 126);
    }

    #[test]
    fn env_value_takes_the_last_definition() {
        let env = vec!["PATH=/a".to_string(), "HOME=/root".into(), "PATH=/b".into()];
        assert_eq!(env_value(&env, "PATH"), Some("/b"));
        assert_eq!(env_value(&env, "PAT"), None);
    }
}
