"""Lookup tables for auditd records: architectures, errno and signal names, record types.

Data, not logic. Numbers come from the Linux UAPI headers (``linux/audit.h``,
``asm-generic/errno*.h``, ``asm/signal.h``); record type names are those auditd writes in
``type=``.
"""

from __future__ import annotations

# AUDIT_ARCH_* values: ELF machine | 0x80000000 for 64-bit | 0x40000000 for little-endian.
ARCHES: dict[int, str] = {
    0xC000003E: "x86_64",
    0x40000003: "i386",
    0xC00000B7: "aarch64",
    0x40000028: "arm",
    0x00000028: "armeb",
    0x80000015: "ppc64",
    0xC0000015: "ppc64le",
    0x00000014: "ppc",
    0x80000016: "s390x",
    0x00000016: "s390",
    0xC00000F3: "riscv64",
    0x400000F3: "riscv32",
    0x00000008: "mips",
    0x40000008: "mipsel",
    0x80000008: "mips64",
    0xC0000008: "mipsel64",
    0xA0000008: "mips64n32",
    0xE0000008: "mipsel64n32",
    0xC0000102: "loongarch64",
    0xC0000032: "ia64",
    0x00000002: "sparc",
    0x8000002B: "sparc64",
    0xC0009026: "alpha",
}

ERRNO_NAMES: dict[int, str] = {
    1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
    8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
    14: "EFAULT", 15: "ENOTBLK", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV",
    20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY",
    26: "ETXTBSY", 27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK",
    32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 36: "ENAMETOOLONG", 37: "ENOLCK",
    38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 42: "ENOMSG", 43: "EIDRM", 44: "ECHRNG",
    45: "EL2NSYNC", 46: "EL3HLT", 47: "EL3RST", 48: "ELNRNG", 49: "EUNATCH", 50: "ENOCSI",
    51: "EL2HLT", 52: "EBADE", 53: "EBADR", 54: "EXFULL", 55: "ENOANO", 56: "EBADRQC",
    57: "EBADSLT", 59: "EBFONT", 60: "ENOSTR", 61: "ENODATA", 62: "ETIME", 63: "ENOSR",
    64: "ENONET", 65: "ENOPKG", 66: "EREMOTE", 67: "ENOLINK", 68: "EADV", 69: "ESRMNT",
    70: "ECOMM", 71: "EPROTO", 72: "EMULTIHOP", 73: "EDOTDOT", 74: "EBADMSG", 75: "EOVERFLOW",
    76: "ENOTUNIQ", 77: "EBADFD", 78: "EREMCHG", 79: "ELIBACC", 80: "ELIBBAD", 81: "ELIBSCN",
    82: "ELIBMAX", 83: "ELIBEXEC", 84: "EILSEQ", 85: "ERESTART", 86: "ESTRPIPE", 87: "EUSERS",
    88: "ENOTSOCK", 89: "EDESTADDRREQ", 90: "EMSGSIZE", 91: "EPROTOTYPE", 92: "ENOPROTOOPT",
    93: "EPROTONOSUPPORT", 94: "ESOCKTNOSUPPORT", 95: "EOPNOTSUPP", 96: "EPFNOSUPPORT",
    97: "EAFNOSUPPORT", 98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN",
    101: "ENETUNREACH", 102: "ENETRESET", 103: "ECONNABORTED", 104: "ECONNRESET",
    105: "ENOBUFS", 106: "EISCONN", 107: "ENOTCONN", 108: "ESHUTDOWN", 109: "ETOOMANYREFS",
    110: "ETIMEDOUT", 111: "ECONNREFUSED", 112: "EHOSTDOWN", 113: "EHOSTUNREACH",
    114: "EALREADY", 115: "EINPROGRESS", 116: "ESTALE", 117: "EUCLEAN", 118: "ENOTNAM",
    119: "ENAVAIL", 120: "EISNAM", 121: "EREMOTEIO", 122: "EDQUOT", 123: "ENOMEDIUM",
    124: "EMEDIUMTYPE", 125: "ECANCELED", 126: "ENOKEY", 127: "EKEYEXPIRED",
    128: "EKEYREVOKED", 129: "EKEYREJECTED", 130: "EOWNERDEAD", 131: "ENOTRECOVERABLE",
    132: "ERFKILL", 133: "EHWPOISON",
    # Kernel-internal codes that still reach audit records from interrupted syscalls.
    512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK",
}  # fmt: skip

SIGNAL_NAMES: dict[int, str] = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
    30: "SIGPWR", 31: "SIGSYS",
}  # fmt: skip

# Fields the kernel and the audit tools write hex-encoded when the value holds a space, a
# quote, a control character or a non-ASCII byte (auparse's "escaped" field types). An
# unquoted value of one of these fields is hex; a quoted one is plain text.
ESCAPED_FIELDS: frozenset[str] = frozenset({
    "path", "comm", "exe", "file", "name", "watch", "cwd", "cmd", "acct", "dir", "key", "vm",
    "old-chardev", "new-chardev", "old-disk", "new-disk", "old-fs", "new-fs", "old-net",
    "new-net", "device", "cgroup", "apparmor", "operation", "denied_mask", "info", "profile",
    "requested_mask", "old-rng", "new-rng", "ocomm", "grp", "new_group", "invalid_context",
    "sw", "root_dir", "proctitle", "data",
})  # fmt: skip

# uid/gid fields that auditd's ENRICHED format follows with an upper-case name field.
UID_FIELDS: tuple[str, ...] = ("auid", "uid", "euid", "suid", "fsuid", "ouid", "oauid", "sauid")
GID_FIELDS: tuple[str, ...] = ("gid", "egid", "sgid", "fsgid", "ogid")

# auditd numbers its own DAEMON_* records apart from the kernel's serials, so they take no
# part in gap detection.
OWN_SERIAL_PREFIX = "DAEMON_"


# Event categories by record type (the first matching record of an event decides).
TYPE_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        (
            "USER_AUTH", "USER_ACCT", "USER_LOGIN", "USER_LOGOUT", "USER_START", "USER_END",
            "CRED_ACQ", "CRED_DISP", "CRED_REFR", "USER_ERR", "LOGIN", "GRP_AUTH",
            "ANOM_LOGIN_FAILURES", "ANOM_LOGIN_TIME", "ANOM_LOGIN_SESSIONS", "ANOM_LOGIN_ACCT",
            "ANOM_LOGIN_LOCATION", "ANOM_LOGIN_SERVICE", "ANOM_LOGIN_ROOT", "CRYPTO_LOGIN",
            "CRYPTO_LOGOUT", "USER_CHAUTHTOK",
        ),
        "authentication",
    ),
    **dict.fromkeys(
        (
            "AVC", "USER_AVC", "SELINUX_ERR", "USER_SELINUX_ERR", "APPARMOR", "APPARMOR_DENIED",
            "APPARMOR_ALLOWED", "APPARMOR_AUDIT", "USER_ROLE_CHANGE", "ROLE_ASSIGN",
            "ROLE_REMOVE", "ROLE_MODIFY", "ANOM_RBAC_FAIL", "ANOM_RBAC_INTEGRITY_FAIL",
            "SECCOMP", "CAPSET",
        ),
        "authorization",
    ),
    **dict.fromkeys(
        (
            "ADD_USER", "DEL_USER", "ADD_GROUP", "DEL_GROUP", "USER_MGMT", "GRP_MGMT",
            "CHUSER_ID", "CHGRP_ID", "GRP_CHAUTHTOK", "ACCT_LOCK", "ACCT_UNLOCK", "USER_CMD",
        ),
        "admin",
    ),
    **dict.fromkeys(
        (
            "CONFIG_CHANGE", "DAEMON_CONFIG", "USYS_CONFIG", "NETFILTER_CFG", "MAC_POLICY_LOAD",
            "MAC_STATUS", "MAC_CONFIG_CHANGE", "USER_MAC_POLICY_LOAD", "USER_MAC_CONFIG_CHANGE",
            "FEATURE_CHANGE", "SOFTWARE_UPDATE", "KERN_MODULE", "TIME_INJOFFSET",
            "TIME_ADJNTPVAL",
        ),
        "configuration",
    ),
}  # fmt: skip

# Syscall events: categories by syscall name (everything else is "system").
SYSCALL_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        (
            "open", "openat", "openat2", "open_by_handle_at", "name_to_handle_at", "read",
            "readv", "pread64", "preadv", "preadv2", "readlink", "readlinkat", "getxattr",
            "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "sendfile",
            "sendfile64", "copy_file_range", "splice",
        ),
        "data_access",
    ),
    **dict.fromkeys(
        (
            "creat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "rmdir", "mkdir",
            "mkdirat", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
            "fchmodat2", "chown", "fchown", "lchown", "fchownat", "chown32", "fchown32",
            "lchown32", "truncate", "ftruncate", "truncate64", "ftruncate64", "write", "writev",
            "pwrite64", "pwritev", "pwritev2", "setxattr", "lsetxattr", "fsetxattr",
            "removexattr", "lremovexattr", "fremovexattr", "mknod", "mknodat", "utime", "utimes",
            "utimensat", "futimesat", "fallocate",
        ),
        "data_change",
    ),
    **dict.fromkeys(
        (
            "init_module", "finit_module", "delete_module", "sethostname", "setdomainname",
            "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime", "mount",
            "umount", "umount2", "move_mount", "fsmount", "swapon", "swapoff", "reboot",
            "kexec_load", "kexec_file_load", "pivot_root", "chroot", "bpf",
        ),
        "configuration",
    ),
    **dict.fromkeys(
        (
            "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
            "setfsgid", "setgroups", "setuid32", "setgid32", "setreuid32", "setregid32",
            "setresuid32", "setresgid32", "setfsuid32", "setfsgid32", "setgroups32", "capset",
            "ptrace",
        ),
        "authorization",
    ),
}  # fmt: skip

# open(2) flags that make an open a change rather than a read: O_WRONLY, O_RDWR, O_CREAT,
# O_TRUNC (same values on x86, arm and aarch64).
OPEN_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000
