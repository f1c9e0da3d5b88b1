"""Every file the toolkit writes (clips, converted files, stats, logs, checkpoints, reports, manifests,
recipe recordings) goes through src/atomic.py: an audit of the source, so that a new writer that could leave
a half-written file after a kill fails here.

Library writers (torch.save, soundfile.write, savefig, json.dump...) may only write to an in-memory buffer
whose bytes then go to `write_bytes_atomic`; nothing opens a file for writing but src/atomic.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from src.atomic import append_text_atomic, write_bytes_atomic, write_text_atomic
from tests.helpers import REPO, files_named

EXEMPT = {"src/atomic.py"}  # the one place that opens files for writing
SOURCES = sorted(p for p in [*REPO.glob("src/*.py"), *REPO.glob("data/*.py"), REPO / "getGlobalStats.py"]
                 if str(p.relative_to(REPO)) not in EXEMPT)
# Library writers: (module alias, function) -> position of the destination argument; "savefig" on any figure.
LIBRARY_WRITERS = {("torch", "save"): 1, ("sf", "write"): 0, ("soundfile", "write"): 0, ("np", "save"): 0,
                   ("np", "savetxt"): 0, ("json", "dump"): 1, ("pickle", "dump"): 1, ("shutil", "copy"): 1,
                   ("shutil", "copyfile"): 1, ("shutil", "copy2"): 1}
# Not outputs: convert_and_divide's lock file holds no data (a pid, emptied at the end).
ALLOWED_OS_OPEN = {("data/convert_and_divide.py", "exclusive")}


def buffer_names(function: ast.AST) -> set[str]:
    """Names bound to io.BytesIO() / io.StringIO() in a function (or module)."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("BytesIO", "StringIO"):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def open_mode(call: ast.Call) -> str:
    """The mode of an open() call; a mode computed at run time counts as writing ("w?")."""
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return "r"
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "w?"


def destination(call: ast.Call) -> ast.expr | None:
    """The destination argument of a library writer call, None for any other call."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    position = 0 if func.attr == "savefig" else None
    if isinstance(func.value, ast.Name):
        position = LIBRARY_WRITERS.get((func.value.id, func.attr), position)
    if position is None or len(call.args) <= position:
        return None
    return call.args[position]


def problem(call: ast.Call, buffers: set[str], where: tuple[str, str]) -> str | None:
    """Why a call writes a file non-atomically, or None."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if isinstance(func, ast.Name) and name == "open" and set(open_mode(call)) & set("wax+"):
        return f"open(..., {open_mode(call)!r})"
    if isinstance(func, ast.Attribute) and name in ("write_text", "write_bytes"):
        return f".{name}()"
    if isinstance(func, ast.Attribute) and name == "open" and getattr(func.value, "id", "") == "os" \
            and where not in ALLOWED_OS_OPEN:
        return "os.open()"
    target = destination(call)
    if target is not None and not (isinstance(target, ast.Name) and target.id in buffers):
        return f"{ast.unparse(func)}() to {ast.unparse(target)}"
    return None


def innermost_functions(tree: ast.Module) -> dict[int, ast.AST]:
    """id(node) -> the innermost function around it (ast.walk visits outer functions first)."""
    owner = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            owner.update((id(node), function) for node in ast.walk(function))
    return owner


def non_atomic_writes(path: Path) -> list[str]:
    """`file:line: what` for every write in a source file that bypasses src/atomic.py."""
    relative = str(path.relative_to(REPO))
    tree = ast.parse(path.read_text())
    owner = innermost_functions(tree)
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        scope = owner.get(id(call), tree)
        why = problem(call, buffer_names(scope), (relative, getattr(scope, "name", "")))
        if why:
            found.append(f"{relative}:{call.lineno}: {why}")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_every_writer_goes_through_src_atomic(path: Path):
    assert non_atomic_writes(path) == []


def test_the_audit_finds_non_atomic_writers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = tmp_path / "writer.py"
    source.write_text(
        "import io, json, torch, soundfile as sf\n"
        "def save(path, model, fig, x):\n"
        "    buffer = io.BytesIO()\n"
        "    torch.save(model, buffer)\n"  # fine: in memory
        "    torch.save(model, path)\n"
        "    sf.write(str(path), x, 16000)\n"
        "    fig.savefig(path)\n"
        "    json.dump({}, open(path, 'w'))\n"
        "    path.write_text('x')\n"
        "    with open(path) as handle:\n"  # fine: reading
        "        handle.read()\n")
    monkeypatch.setattr("tests.test_atomic_writes.REPO", tmp_path)
    assert [line.split(": ", 1)[1] for line in non_atomic_writes(source)] == [
        "torch.save() to path", "sf.write() to str(path)", "fig.savefig() to path", "json.dump() to open(path, 'w')",
        "open(..., 'w')", ".write_text()"]


def test_atomic_writes_leave_no_temporary_file_and_append(tmp_path: Path):
    target = tmp_path / "deep" / "out.txt"
    write_text_atomic(target, "one\n")
    append_text_atomic(target, "two\n")
    write_bytes_atomic(tmp_path / "blob", b"\x00\x01")
    assert target.read_text() == "one\ntwo\n" and (tmp_path / "blob").read_bytes() == b"\x00\x01"
    assert files_named(tmp_path, ".partial") == []


def test_a_killed_but_unreaped_process_leaves_a_stale_temporary(tmp_path: Path):
    # A SIGKILLed pool worker stays a zombie until it is reaped; a rerun that starts at once must
    # still clean up its temporary files (convert_and_divide's kill-and-rerun test caught this).
    import os
    import signal
    import subprocess
    import time

    from src.atomic import remove_stale_partials

    child = subprocess.Popen(["sleep", "60"])
    live = tmp_path / f".clip.mp3.{child.pid}.partial"
    live.write_bytes(b"being written")
    assert remove_stale_partials(tmp_path) == 0 and live.exists()  # its writer still runs
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert remove_stale_partials(tmp_path) == 1 and not live.exists()  # a zombie writes nothing more
    child.wait()
