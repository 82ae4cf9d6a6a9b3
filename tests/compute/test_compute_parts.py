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
