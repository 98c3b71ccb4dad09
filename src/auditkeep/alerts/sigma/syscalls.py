"""System call names for auditd SYSCALL records that carry only the number.

Sigma's auditd rules test ``SYSCALL: execve``, the name an enriched audit log adds. Raw
logs have ``arch`` and ``syscall`` numbers; this table covers the calls detection rules
care about on the common architectures (from the kernel's syscall tables).
"""

from __future__ import annotations

from typing import Any

_X86_64 = {
    0: "read", 1: "write", 2: "open", 3: "close", 4: "stat", 5: "fstat", 6: "lstat",
    9: "mmap", 10: "mprotect", 16: "ioctl", 21: "access", 22: "pipe", 32: "dup", 33: "dup2",
    39: "getpid", 41: "socket", 42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom",
    49: "bind", 50: "listen", 56: "clone", 57: "fork", 58: "vfork", 59: "execve",
    60: "exit", 62: "kill", 63: "uname", 76: "truncate", 77: "ftruncate", 82: "rename",
    83: "mkdir", 84: "rmdir", 85: "creat", 86: "link", 87: "unlink", 88: "symlink",
    90: "chmod", 91: "fchmod", 92: "chown", 93: "fchown", 94: "lchown", 99: "sysinfo",
    101: "ptrace", 103: "syslog", 105: "setuid", 106: "setgid", 113: "setreuid",
    117: "setresuid", 133: "mknod", 135: "personality", 155: "pivot_root", 157: "prctl",
    161: "chroot", 165: "mount", 166: "umount2", 169: "reboot", 175: "init_module",
    176: "delete_module", 257: "openat", 258: "mkdirat", 259: "mknodat", 260: "fchownat",
    263: "unlinkat", 264: "renameat", 265: "linkat", 266: "symlinkat", 268: "fchmodat",
    272: "unshare", 288: "accept4", 308: "setns", 310: "process_vm_readv",
    311: "process_vm_writev", 313: "finit_module", 316: "renameat2", 319: "memfd_create",
    321: "bpf", 322: "execveat",
}
_AARCH64 = {
    33: "mknodat", 92: "personality", 105: "init_module", 106: "delete_module",
    116: "syslog", 179: "sysinfo", 198: "socket", 203: "connect", 221: "execve",
    273: "finit_module", 279: "memfd_create", 281: "execveat",
}
_I386 = {
    11: "execve", 14: "mknod", 103: "syslog", 116: "sysinfo", 128: "init_module",
    136: "personality", 356: "memfd_create", 358: "execveat",
}
# audit architecture constants (AUDIT_ARCH_*), as auditd prints them
_ARCH = {"c000003e": _X86_64, "c00000b7": _AARCH64, "40000003": _I386}


def syscall_name(arch: Any, number: Any) -> str | None:
    """The name of syscall ``number`` on ``arch`` (hex as printed; x86_64 when unknown)."""
    table = _ARCH.get(str(arch).lower(), _X86_64) if arch is not None else _X86_64
    try:
        return table.get(int(str(number)))
    except ValueError:
        return None
