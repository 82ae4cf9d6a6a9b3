"""The attack script run inside a job (and, as the control, on the host).

``ATTACKS`` is Python source: given JSON arguments naming targets, it tries each way out
and prints one JSON line ``{attack: "blocked: ..." | "ESCAPED: ..."}``. The control run
of the same script on the host, unsandboxed, shows each probe really detects a way out
(it reports ESCAPED there), so a "blocked" inside the sandbox means something.
"""

ATTACKS = r'''
import ctypes, errno, json, os, signal, socket, sys, uuid

args = json.load(open(os.environ["TAPHOUSE_ARGS"]))[0] if os.environ.get("TAPHOUSE_ARGS") \
    else json.loads(sys.argv[1])
results = {}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def probe(name):
    def wrap(fn):
        try:
            detail = fn()
            results[name] = "ESCAPED: " + str(detail)[:200]
        except Exception as exc:  # any failure means the way out is closed
            results[name] = "blocked: " + type(exc).__name__ + " " + str(exc)[:200]
        return fn
    return wrap


def syscall(nr, *a):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) for x in a])
    if r == -1:
        e = ctypes.get_errno()
        if e == errno.EPERM:
            raise PermissionError(e, "EPERM")
        return f"allowed (errno {errno.errorcode.get(e, e)})"
    return f"allowed (returned {r})"


def connect(host, port):
    with socket.create_connection((host, port), timeout=3):
        return f"connected to {host}:{port}"


@probe("tcp_http_port")
def _():
    return connect("127.0.0.1", args["http_port"])


@probe("tcp_other_port")
def _():
    return connect("127.0.0.1", args["other_port"])


@probe("tcp_host_address")
def _():
    return connect(args["host_ip"], args["other_port"])


@probe("dns")
def _():
    return socket.getaddrinfo("pypi.org", 443)


@probe("abstract_unix_socket")
def _():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect("\0" + args["abstract_name"])
    return "connected"


@probe("read_metadata_db")
def _():
    return len(open(args["meta_path"], "rb").read(100))


@probe("read_table_files")
def _():
    return os.listdir(args["tables_dir"])


@probe("read_jobs_dir")
def _():
    return os.listdir(args["jobs_dir"])


@probe("read_other_home_host_path")
def _():
    return open(os.path.join(args["other_home"], "secret.txt")).read()


@probe("read_other_home")
def _():
    return open(f"/home/{args['other_user']}/secret.txt").read()


@probe("list_homes")
def _():
    found = [h for h in os.listdir("/home") if h != os.environ.get("USER")]
    if not found:
        raise FileNotFoundError("no other home")
    return found


@probe("read_shadow")
def _():
    return open("/etc/shadow").read(10)


@probe("read_root_home")
def _():
    return os.listdir("/root")


@probe("see_sys")
def _():
    return os.listdir("/sys/fs/cgroup")


def write_at(path):
    p = os.path.join(path, f".taphouse-attack-{uuid.uuid4().hex}")
    with open(p, "w") as f:
        f.write("x")
    os.unlink(p)
    return f"wrote {p}"


@probe("write_usr")
def _():
    return write_at("/usr")


@probe("write_root_dir")
def _():
    return write_at("/")


@probe("write_etc")
def _():
    return write_at("/etc")


@probe("write_python_env")
def _():
    return write_at(sys.prefix)


@probe("signal_server")
def _():
    os.kill(args["server_pid"], 0)
    return f"pid {args['server_pid']} can be signalled"


@probe("see_server_process")
def _():
    return open(f"/proc/{args['server_pid']}/cmdline").read()[:80]


@probe("ptrace")
def _():
    return syscall(101, 0, 0, 0, 0)  # PTRACE_TRACEME


@probe("keyctl")
def _():
    return syscall(250, 0, -3, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring


@probe("io_uring")
def _():
    return syscall(425, 1, 0)


@probe("perf_event_open")
def _():
    return syscall(298, 0, 0, -1, -1, 0)


@probe("capabilities")
def _():
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:") and int(line.split()[1], 16) != 0:
            return line.strip()
    raise PermissionError("no effective capabilities")


@probe("setuid_root")
def _():
    os.setuid(0)
    return "became root"


@probe("root_uid")
def _():
    if os.getuid() == 0 or os.geteuid() == 0:
        return "runs as root"
    raise PermissionError(f"uid {os.getuid()}")


@probe("no_new_privs_off")
def _():
    for line in open("/proc/self/status"):
        if line.startswith("NoNewPrivs:") and line.split()[1] == "0":
            return "no_new_privs is off"
    raise PermissionError("no_new_privs is on")


@probe("leaked_fds")
def _():
    fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
    extra = [f for f in fds if f > 3]
    if extra:
        return f"open fds {fds}: " + ", ".join(
            os.readlink(f"/proc/self/fd/{f}") for f in extra if os.path.exists(f"/proc/self/fd/{f}"))
    raise PermissionError(f"only {fds}")


@probe("server_environment")
def _():
    leaked = [k for k, v in os.environ.items() if k.startswith(("TAPHOUSE_COMPUTE", "TAPHOUSE_DATA",
                                                      "PYTEST", "VIRTUAL_ENV", "SSH_"))
              or k in ("OLDPWD", "HOSTNAME", "SHELL", "TERM")
              or os.path.dirname(args["meta_path"]) in v]
    if os.environ.get("HOME", "").startswith("/root"):
        leaked.append("HOME=/root")
    if leaked:
        return leaked
    raise PermissionError("clean environment")


# Last: a new user namespace changes what the probes above would see.
@probe("unshare_user_namespace")
def _():
    if libc.unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare failed")
    return "new user namespace"


@probe("unshare_net_namespace")
def _():
    if libc.unshare(0x40000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare failed")
    return "new network namespace"


print(json.dumps(results))
'''

#: What the control run on the host must show as ESCAPED (so the probe can fail).
CONTROL_ESCAPES = (
    "tcp_http_port", "tcp_other_port", "tcp_host_address", "abstract_unix_socket",
    "read_metadata_db", "read_table_files", "read_jobs_dir", "read_other_home_host_path",
    "read_shadow", "read_root_home", "see_sys", "write_usr", "write_root_dir", "write_etc",
    "write_python_env", "signal_server", "see_server_process", "ptrace", "keyctl",
    "io_uring", "perf_event_open", "unshare_user_namespace", "unshare_net_namespace",
    "capabilities", "setuid_root", "root_uid", "no_new_privs_off",
)
