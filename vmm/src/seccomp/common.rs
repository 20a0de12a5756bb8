//! What every thread of husk-vmm needs, whatever it does (std and glibc
//! underneath), and what a thread needs to start others.

use super::policy::{arg32, arg64, Allowed};

/// The system calls any Rust thread on glibc makes: allocation, locks,
/// clocks, writing a message, returning from a signal handler, and its own
/// end.
pub fn every_thread() -> Vec<Allowed> {
    vec![
        // std's Mutex, Condvar, channels and thread joins, and glibc's
        // locks, all wait and wake on futexes.
        Allowed::any(libc::SYS_futex),
        // std's channels back off with sched_yield while a peer is midway
        // through an operation.
        Allowed::any(libc::SYS_sched_yield),
        // Instant::now (the boot timeline, channel timeouts) goes through the
        // vDSO, which falls back to the system call on clock sources it
        // cannot read from user space.
        Allowed::any(libc::SYS_clock_gettime),
        // glibc malloc: the main arena grows with brk, thread arenas and
        // large blocks are mappings that it grows, trims and returns.
        Allowed::any(libc::SYS_brk),
        no_executable_memory(libc::SYS_mmap),
        no_executable_memory(libc::SYS_mprotect),
        Allowed::any(libc::SYS_munmap),
        Allowed::any(libc::SYS_mremap),
        // glibc malloc gives trimmed heap back, and a thread's stack on its
        // exit, with MADV_DONTNEED.
        Allowed::any(libc::SYS_madvise),
        // Dropping a File, socket or eventfd.
        Allowed::any(libc::SYS_close),
        // Debug builds of std check that a descriptor is open before they
        // close it (OwnedFd's drop: fcntl F_GETFD).
        Allowed::when(libc::SYS_fcntl, [arg32(1).equals(libc::F_GETFD as u64)]),
        // eprintln and panic messages to stderr; eventfd signals (an irqfd,
        // a queue notifier, the vCPU stop event, block completions).
        Allowed::any(libc::SYS_write),
        // Returning from a signal handler: the vCPU kick, std's stack
        // overflow handler.
        Allowed::any(libc::SYS_rt_sigreturn),
        // A system call interrupted by a handler is resumed through
        // restart_syscall (nanosleep, futex waits with a timeout).
        Allowed::any(libc::SYS_restart_syscall),
        // glibc blocks signals around starting and ending a thread, around
        // pthread_kill, and in abort().
        Allowed::any(libc::SYS_rt_sigprocmask),
        // A thread's end: std takes down its alternate signal stack
        // (sigaltstack, munmap), glibc then calls exit. Any thread may end
        // the process (std::process::exit, returning from main).
        Allowed::any(libc::SYS_sigaltstack),
        Allowed::any(libc::SYS_exit),
        Allowed::any(libc::SYS_exit_group),
        // abort() (a panic in a release build, which sets panic=abort)
        // raises SIGABRT on its own thread: the process then dies of
        // SIGABRT as it should, not of SIGSYS.
        Allowed::any(libc::SYS_getpid),
        Allowed::any(libc::SYS_gettid),
        Allowed::when(libc::SYS_tgkill, [arg32(2).equals(libc::SIGABRT as u64)]),
        // glibc malloc sizes its arenas by the CPUs the thread may run on,
        // and pthread_getattr_np (std's stack guard lookup) reports them.
        Allowed::any(libc::SYS_sched_getaffinity),
        // std seeds each thread's HashMap keys on first use.
        Allowed::any(libc::SYS_getrandom),
    ]
}

/// What a thread needs to start threads of its own, which begin under its
/// filter and then narrow it with their own (see the module documentation).
pub fn thread_spawning() -> Vec<Allowed> {
    let thread_flags = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    vec![
        // pthread_create: glibc 2.34 and later use clone3, whose flags are
        // in memory seccomp cannot look at. A process forked through it
        // would still carry this filter, which allows no execve.
        Allowed::any(libc::SYS_clone3),
        // glibc falls back to clone on kernels without clone3; only thread
        // creation, never a new process.
        Allowed::when(
            libc::SYS_clone,
            [arg64(0).masked(thread_flags, thread_flags)],
        ),
        // The new thread's first steps, before it narrows this filter:
        // glibc registers its robust futex list and its rseq area, std
        // names it (prctl PR_SET_NAME; the stack and the alternate signal
        // stack come from every_thread).
        Allowed::any(libc::SYS_set_robust_list),
        Allowed::any(libc::SYS_rseq),
        // Then the thread installs its own filter: no_new_privs first, as
        // seccomp(2) requires of an unprivileged filter, then the filter.
        Allowed::when_one_of(
            libc::SYS_prctl,
            0,
            &[libc::PR_SET_NAME as u64, libc::PR_SET_NO_NEW_PRIVS as u64],
        ),
        Allowed::when(
            libc::SYS_seccomp,
            [
                arg32(0).equals(u64::from(libc::SECCOMP_SET_MODE_FILTER)),
                arg32(1).equals(0),
            ],
        ),
    ]
}

/// std's write on a socket is send(MSG_NOSIGNAL), which glibc makes a
/// sendto without an address: sends on connected sockets only.
pub fn socket_writes() -> Allowed {
    Allowed::when(libc::SYS_sendto, [arg64(4).equals(0)])
}

/// Unix sockets only: every socket husk-vmm opens after it confined itself
/// is a Unix stream socket (vsock's host side, the agent socket).
pub fn unix_sockets() -> Allowed {
    Allowed::when(libc::SYS_socket, [arg32(0).equals(libc::AF_UNIX as u64)])
}

/// openat(2) for reading only: no write access, no creating or truncating
/// (an O_TMPFILE needs write access too).
pub fn read_only_open() -> Allowed {
    let write_or_create = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;
    Allowed::when(
        libc::SYS_openat,
        [arg32(2).masked(write_or_create, libc::O_RDONLY as u64)],
    )
}

/// `mmap` or `mprotect` without PROT_EXEC: husk-vmm loads no code after it
/// started, so no thread ever needs executable memory.
fn no_executable_memory(syscall: libc::c_long) -> Allowed {
    Allowed::when(syscall, [arg32(2).without(libc::PROT_EXEC as u64)])
}
