"""The compute package's parts without a server: the seccomp program, symlink-safe file
access, notebook conversion, the client's function shipping and memory sizes."""

from __future__ import annotations

import os
import struct

import pytest

from taphouse.client.compute import function_script, parse_memory
from taphouse.compute.files import open_beneath, regular_files, tree_usage
from taphouse.compute.seccomp import X86_64_DENIED, SeccompUnsupported, build_filter
from taphouse.compute.service import ComputeError, notebook_source


def test_seccomp_program_is_well_formed():
    prog = build_filter("x86_64")
    assert len(prog) % 8 == 0
    insns = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    assert len(insns) < 4096
    denied = {k for code, _, _, k in insns if code == 0x15}
    assert set(X86_64_DENIED.values()) <= denied
    # Every jump stays inside the program.
    for i, (code, jt, jf, _) in enumerate(insns):
        if code & 0x07 == 0x05:
            assert i + 1 + max(jt, jf) < len(insns)
    assert insns[-1][3] == 0x00050000 | 1  # EPERM
    with pytest.raises(SeccompUnsupported):
        build_filter("riscv64")


def test_file_access_never_follows_links(tmp_path):
    root = tmp_path / "work"
    (root / "d").mkdir(parents=True)
    (root / "a.txt").write_text("abc")
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * 100_000)
    os.symlink(secret, root / "link")
    os.symlink(tmp_path, root / "d" / "up")
    assert [n for n, _ in regular_files(root)] == ["a.txt"]
    assert tree_usage(root) < 100_000
    fd = open_beneath(root, "a.txt")
    assert os.read(fd, 10) == b"abc"
    os.close(fd)
    for bad in ("link", "d/up/secret", "../secret", "d", "", "/etc/passwd"):
        with pytest.raises(FileNotFoundError):
            open_beneath(root, bad)


def test_notebook_source_keeps_code_cells():
    import json

    nb = json.dumps({"cells": [{"cell_type": "code", "source": ["!pip install x\n", "a = 1"]},
                               {"cell_type": "markdown", "source": "text"}]})
    assert notebook_source(nb) == "# !pip install x\na = 1\n"
    with pytest.raises(ComputeError):
        notebook_source("{not json")


def test_functions_ship_as_source_not_pickles():
    def f(x, y=2):
        return x * y

    script = function_script(f)
    assert "def f(x, y=2):" in script and "pickle" not in script
    namespace: dict = {}
    os.environ["TAPHOUSE_ARGS"] = ""
    exec(compile(script.replace("__taphouse_main()\n", ""), "s", "exec"), namespace)
    assert namespace["f"](3) == 6
    with pytest.raises(TypeError):
        function_script(lambda x: x)


def test_memory_sizes():
    assert parse_memory("2GB") == 2 * 1024**3
    assert parse_memory("512 MiB") == 512 * 1024**2
    assert parse_memory(1000) == 1000
    with pytest.raises(ValueError):
        parse_memory("lots")


def test_walks_survive_deep_trees_and_odd_names(tmp_path):
    from taphouse.compute.files import MAX_DEPTH, TreeTooDeep

    root = tmp_path / "home"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(MAX_DEPTH + 5):  # deeper than PATH_MAX allows by name: made by fds
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)
    with pytest.raises(TreeTooDeep):
        tree_usage(root)
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "x.txt").write_text("x")
    open(os.path.join(os.fsencode(ok), b"\xff.bin"), "wb").close()
    names = [n for n, _ in regular_files(ok)]
    assert "x.txt" in names and len(names) == 2


def _fake_cgroup(path, files):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_cgroup_v2_files_are_written_as_the_kernel_expects(tmp_path):
    """This tests our writing only: a temporary directory laid out like a cgroup v2
    directory stands in for the kernel's (this machine has no cgroup v2 memory
    controller, so v2 enforcement is not exercised here; v1 is, in
    test_compute_attacks.py)."""
    from taphouse.compute import cgroups

    parent = _fake_cgroup(tmp_path / "delegated", {
        "cgroup.controllers": "cpu io memory pids\n", "cgroup.subtree_control": ""})
    assert cgroups.v2_has_memory(parent)
    assert not cgroups.v2_has_memory(_fake_cgroup(tmp_path / "plain", {
        "cgroup.controllers": "cpu pids\n"}))
    cgroups.v2_enable_memory(parent)
    assert (parent / "cgroup.subtree_control").read_text() == "+memory\n"
    (parent / "cgroup.subtree_control").write_text("cpu memory\n")
    cgroups.v2_enable_memory(parent)  # already on: nothing written
    assert (parent / "cgroup.subtree_control").read_text() == "cpu memory\n"

    job = _fake_cgroup(parent / "job-j1", {
        "memory.max": "max\n", "memory.swap.max": "max\n", "memory.oom.group": "0\n",
        "memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\noom_group_kill 0\n",
        "memory.peak": "1234\n", "cgroup.kill": "", "cgroup.procs": ""})
    cgroups.v2_set_limit(job, 400 * 1024**2)
    assert (job / "memory.max").read_text() == f"{400 * 1024**2}\n"
    assert (job / "memory.swap.max").read_text() == "0\n"
    assert (job / "memory.oom.group").read_text() == "1\n"
    assert cgroups.v2_oom_kills(job) == 0
    (job / "memory.events").write_text("low 0\nhigh 0\nmax 40\noom 2\noom_kill 3\n")
    assert cgroups.v2_oom_kills(job) == 3
    assert cgroups.v2_peak(job) == 1234
    cgroups.v2_kill(job)
    assert (job / "cgroup.kill").read_text() == "1\n"
    # Without swap accounting (no memory.swap.max) only memory.max is written.
    bare = _fake_cgroup(parent / "job-j2", {"memory.max": "max\n"})
    cgroups.v2_set_limit(bare, 64 * 1024**2)
    assert sorted(p.name for p in bare.iterdir()) == ["memory.max"]

    groups = cgroups.MemoryCgroups(2, parent, "abc")
    assert groups.root == parent / "taphouse-abc"
    assert groups.mechanism == "cgroup v2 memory.max"
    assert groups.oom_kills(job) == 3


def test_cgroup_v1_files_and_the_job_cgroup_life_cycle(tmp_path):
    """v1 writes against a directory laid out like the memory hierarchy (the real one
    is exercised by the sandbox tests); then create/join/remove on the real hierarchy of
    this machine."""
    import subprocess

    from taphouse.compute import cgroups

    job = _fake_cgroup(tmp_path / "job-j1", {
        "memory.limit_in_bytes": "9223372036854771712\n",
        "memory.memsw.limit_in_bytes": "9223372036854771712\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        "memory.max_usage_in_bytes": "777\n"})
    cgroups.v1_set_limit(job, 300 * 1024**2)
    assert (job / "memory.limit_in_bytes").read_text() == f"{300 * 1024**2}\n"
    assert (job / "memory.memsw.limit_in_bytes").read_text() == f"{300 * 1024**2}\n"
    assert cgroups.v1_oom_kills(job) == 2
    assert cgroups.v1_peak(job) == 777

    groups, why = cgroups.detect(cgroups.server_name(tmp_path))
    assert groups is not None, why
    assert groups.version == 1 and "cgroup v1 memory.limit_in_bytes under" in why
    path = groups.create("unit", 100 * 1024**2)
    try:
        proc = subprocess.Popen(["sleep", "60"])
        groups.join(path, proc.pid)
        assert str(proc.pid) in (path / "cgroup.procs").read_text().split()
        assert groups.oom_kills(path) == 0
        assert groups.remove(path)  # kills what is left, then removes it
        assert proc.wait(10) == -9
        assert not path.exists()
        assert groups.remove_leftovers() == 0
        leftover = groups.create("left", 100 * 1024**2)
        assert groups.remove_leftovers() == 1 and not leftover.exists()
        # Another server's empty cgroup (it ended without stopping) is swept; a busy one
        # stays; a server whose own cgroup was swept makes it again for its next job.
        other = cgroups.MemoryCgroups(1, groups.base, cgroups.server_name(tmp_path / "x"))
        other.setup()
        busy = other.create("busy", 100 * 1024**2)
        groups.sweep()  # (counts would include other test servers' empty cgroups)
        assert other.root.exists()
        other.remove(busy)
        groups.sweep()
        assert not other.root.exists()
        again = other.create("again", 100 * 1024**2)
        assert again.is_dir()
        other.close()
        assert not other.root.exists()
    finally:
        groups.close()
    assert not groups.root.exists()
    off, why = cgroups.detect("x", setting="off")
    assert off is None and "off" in why
