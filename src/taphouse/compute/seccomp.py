"""The seccomp filter of the sandbox: a small classic-BPF program assembled here.

It denies, with ``EPERM``, the system calls a Python analysis never needs and that
widen the kernel's attack surface or reach outside the sandbox: tracing other processes,
mounting, kernel keyrings, eBPF, io_uring, perf events, modules, namespaces, clocks,
``userfaultfd``; ``clone`` with a namespace flag; ``clone3`` answers ``ENOSYS`` (its flags
sit in memory a filter cannot read), so the C library falls back to ``clone``. A foreign
architecture (32-bit or x32 calls on x86-64) kills the process.

bubblewrap loads the program (``--seccomp FD``) just before it runs the user's command,
after its own set-up, with no-new-privileges set.
"""

from __future__ import annotations

import platform
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_EPERM = 1
_ENOSYS = 38

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000

_X86_64_CLONE = 56
_X86_64_CLONE3 = 435
#: Denied system calls on x86-64 (numbers from asm/unistd_64.h).
X86_64_DENIED = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "swapon": 167,
    "swapoff": 168, "reboot": 169, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "add_key": 248,
    "request_key": 249, "keyctl": 250, "bpf": 321, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "perf_event_open": 298,
    "userfaultfd": 323, "open_by_handle_at": 304, "name_to_handle_at": 303, "unshare": 272,
    "setns": 308, "fanotify_init": 300, "lookup_dcookie": 212, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "open_tree": 428, "move_mount": 429,
    "mount_setattr": 442, "acct": 163, "quotactl": 179, "quotactl_fd": 443, "syslog": 103,
    "iopl": 172, "ioperm": 173, "personality": 135, "uselib": 134, "vhangup": 153,
    "nfsservctl": 180, "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305,
    "adjtimex": 159, "setdomainname": 171, "sethostname": 170,
}


class SeccompUnsupported(RuntimeError):
    """No filter is known for this machine's architecture."""


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


#: What a sandbox that starts nested sandboxes (a user's Jupyter server starting its
#: kernels with bubblewrap) must still be allowed; user code never gets this filter.
NESTING = ("mount", "umount2", "pivot_root", "unshare", "chroot", "fsopen", "fsconfig",
           "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr", "sethostname",
           "setdomainname")


def build_filter(machine: str | None = None, *, nested: bool = False) -> bytes:
    """The filter program (``struct sock_filter`` array) for ``machine`` (default: this
    one); raises :class:`SeccompUnsupported` for an architecture without a table.
    ``nested``: namespaces and mounts allowed, for :data:`NESTING`."""
    machine = machine or platform.machine()
    if machine not in ("x86_64", "amd64", "AMD64"):
        raise SeccompUnsupported(f"no seccomp filter for the {machine} architecture"
                                 " (only x86_64); compute jobs cannot be sandboxed here")
    denied = sorted({nr for name, nr in X86_64_DENIED.items()
                     if not (nested and name in NESTING)})
    namespaces = 0 if nested else _CLONE_NAMESPACES
    # Layout: [arch check][nr load][x32][clone3][clone][denied...][allow]
    #         [clone flags check][enosys][eperm]
    body: list[tuple[int, str | int, str | int, int]] = [
        (_LD_W_ABS, 0, 0, 4),                                  # A = arch
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, 0),                                  # A = syscall number
        (_JGE_K, "eperm", 0, _X32_SYSCALL_BIT),
        (_JEQ_K, "enosys", 0, _X86_64_CLONE3),
        (_JEQ_K, "clone", 0, _X86_64_CLONE),
    ]
    body += [(_JEQ_K, "eperm", 0, nr) for nr in denied]
    body.append((_RET_K, 0, 0, _RET_ALLOW))
    labels = {"clone": len(body)}
    body += [
        (_LD_W_ABS, 0, 0, 16),                                 # A = low word of args[0]
        (_JSET_K, "eperm", 0, namespaces),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    labels["enosys"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ERRNO | _ENOSYS))
    labels["eperm"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ERRNO | _EPERM))
    out = []
    for i, (code, jt, jf, k) in enumerate(body):
        jumps = []
        for target in (jt, jf):
            if isinstance(target, str):
                offset = labels[target] - i - 1
                assert 0 <= offset < 256
                jumps.append(offset)
            else:
                jumps.append(target)
        out.append(_insn(code, jumps[0], jumps[1], k))
    return b"".join(out)
