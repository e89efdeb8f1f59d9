"""The command line: the article's demo and the benchmark runner, run for real."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import procshare as procshare_lib


def procshare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "procshare", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_demo_counts_exactly_with_procshare() -> None:
    r = procshare("demo", "--procs", "4", "--incs", "300")
    assert r.returncode == 0, r.stderr
    rows = {line.split("  ")[0]: line.split() for line in r.stdout.splitlines()}
    for label in ("procshare Value, v += 1", "procshare Counter, c += 1",
                  "procshare Manager Value, no lock", "procshare Value, v.value += 1, no lock",
                  "multiprocessing Manager Value + Manager Lock"):  # fmt: skip
        cells = rows[label]
        assert cells[-5:-2] == ["1200", "1200", "0"], cells  # expected, got, lost
    assert "procshare rows exact, those without a lock included: yes" in r.stdout
    assert rows["plain global list"][3] == "[]"
    for label in ("procshare List", "procshare Manager list", "multiprocessing Manager list"):
        assert " ".join(rows[label]).startswith(f"{label} [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] ")
    # one table style: the ratio column has one name, and each table names its baseline
    assert r.stdout.count("vs baseline: speed relative to ") == 2


def test_bench_quick_prints_every_section_with_ratios() -> None:
    r = procshare("bench", "--quick")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "one run of each case (no median)" in out and "0.000x" not in out
    for title in ("Increments", "Lock acquire", "Messages through a queue", "Shared dict",
                  "Dict incr on one hot key", "Lists that move elements", "Managers", "Actors",
                  "Wake-up latency", "Many small objects"):  # fmt: skip
        assert title in out
    lines = out.splitlines()
    rows = [ln for ln in lines if re.search(r"x +(exact|lost \d+|-)$", ln)]  # a ratio, then updates
    assert len(rows) == 14 + 14  # counters 7 x 2; locks 8 + 6
    rows += [ln for ln in lines if ln.startswith("procshare Dict incr(hot key)")]
    assert len(rows) == 14 + 14 + 2  # and Dict incr at 1 and 2 processes
    for old in ("procshare is", "vs Pipe", "vs mp.Queue", "speed vs", " ratio "):
        assert old not in out
    ratio_heads = [ln for ln in lines if re.search(r"  vs baseline( |$)", ln)]
    assert len(ratio_heads) == out.count("vs baseline: speed relative to ") == 10
    assert all("exact" in ln for ln in rows if "procshare" in ln and ("+=" in ln or "incr" in ln))
    first = next(i for i, ln in enumerate(lines) if ln.startswith("Wake-up latency")) + 2
    table = lines[first : next((i for i in range(first, len(lines)) if not lines[i]), None)]
    latency = [ln for ln in table if " us " in ln]  # the latency table's rows only
    assert len(latency) == 7 and any(ln.startswith("mp.Pipe") for ln in latency)
    queues = [ln for ln in out.splitlines() if "->" in ln and ln.rstrip().endswith("x")]
    assert len(queues) >= 6  # procshare (single, batched) and mp.Queue, at 1->1 and 2->2
    dicts = [ln for ln in out.splitlines() if ln.startswith(("procshare Dict", "procshare List"))]
    assert len(dicts) >= 8
    managers = [ln for ln in lines if re.search(r"^(registered|Value|dict|Lock|Namespace).*x$", ln)]
    assert len(managers) == 6
    peers = r"^(procshare actor|Pykka|mp manager proxy) .*(x|-)$"  # "-": no baseline row
    actors = [ln for ln in lines if re.search(peers, ln)]
    assert len(actors) >= 5  # ask, proxy call and tell; the manager's ask and call


def test_bench_one_section() -> None:
    r = procshare("bench", "--quick", "--only", "latency")
    assert r.returncode == 0, r.stderr
    assert "Wake-up latency" in r.stdout and "Increments" not in r.stdout


def test_bench_objects_section_counts_and_compares() -> None:
    r = procshare("bench", "--quick", "--only", "objects")
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.rstrip().endswith("x")]
    assert any(ln.startswith("procshare Counter()") for ln in rows), r.stdout
    assert any(ln.startswith("multiprocessing.Value('q')") for ln in rows)
    assert any(ln.startswith("procshare List() in a Dict") for ln in rows)
    assert len(rows) == 9 and "failed" not in r.stdout  # a failed check or process says so


def test_bench_lists_section_times_moves_and_scans_beside_a_list() -> None:
    r = procshare("bench", "--quick", "--only", "lists")
    assert r.returncode == 0, r.stderr
    assert "Lists that move elements: 2,000 items" in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if re.search(r" (ms|us) .* (ms|us) .*x$", ln)]
    ops = ("insert(0, x)", "pop(0)", "del l[0]", "remove(x), x near the front",
           "remove(x), x near the end", "x in l, x last", "x in l, x absent", "index(x)",
           "count(x)", "l == list", "extend(range(n))")  # fmt: skip
    assert len(rows) == len(ops) and all(any(ln.startswith(op) for ln in rows) for op in ops)
    assert "differ" not in r.stdout and "vs baseline: speed relative to list " in r.stdout


def test_bench_scaling_view_counts_exactly() -> None:
    r = procshare("bench", "--quick", "--only", "scaling", "--procs", "1,2")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for title in ("Queue put / get", "Dict incr, one hot key", "Dict compare_and_set",
                  "Lock acquire + release, all contending", "Dict get, all readers",
                  "Dict set, small values", "Dict set, 1 KiB rewrites"):  # fmt: skip
        assert title in out
    checked = [ln for ln in out.splitlines() if ln.rstrip().endswith(("exact", "LOST"))
               or " LOST " in ln]  # fmt: skip
    # queues (procshare, mp), incr, Counter, compare_and_set, two locks: all exact
    assert len(checked) >= 7 and all(ln.rstrip().endswith("exact") for ln in checked), out
    assert "vs baseline: speed relative to mp.Lock " in out
    assert re.search(r"procshare Queue vs baseline .*\dx", out)
    assert "Increments" not in out


def test_bad_options_are_rejected() -> None:
    r = procshare("demo", "--procs", "0")
    assert r.returncode == 2 and "--procs" in r.stderr
    for bad in (["--procs", "0,2"], ["--procs", "two"], ["--seconds", "0"]):
        r = procshare("bench", *bad)
        assert r.returncode == 2 and bad[0] in r.stderr


def test_ls_and_rm(name: str) -> None:
    create = f"import procshare; procshare.Counter(7, name={name!r})"
    assert subprocess.run([sys.executable, "-c", create], timeout=60, check=False).returncode == 0
    listing = procshare("ls")
    assert listing.returncode == 0
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith(name))
    assert "counter" in line and "creator gone" in line
    assert procshare("rm", name).returncode == 0
    assert name not in procshare("ls").stdout
    missing = procshare("rm", name)
    assert missing.returncode == 1 and "no procshare object" in missing.stdout
    invalid = procshare("rm", "bad/name", "../x")  # said to be invalid, not "not found"
    assert invalid.returncode == 1
    assert invalid.stdout.count("invalid name") == 2 and "no procshare object" not in invalid.stdout


def test_rm_dead_says_when_there_is_nothing_to_remove() -> None:
    r = procshare("rm", "--dead")
    assert r.returncode == 0 and ("nothing to remove" in r.stdout or "removed" in r.stdout)


def test_rm_dead_removes_what_a_killed_program_left() -> None:
    code = (
        "import os, pickle, signal, procshare\n"
        "c = procshare.Counter(); pickle.dumps(c); print(c.name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    left, slot = r.stdout.strip().split("@")  # the Counter's arena, and its slot in it
    listed = procshare("ls").stdout
    assert slot and left in listed and "counter arena" in listed
    removed = procshare("rm", "--dead")
    assert removed.returncode == 0 and f"removed {left}" in removed.stdout
    assert left not in procshare("ls").stdout


def _wait_for_lock(lock: Any) -> None:
    lock.acquire()  # sleeps: the test holds it


def test_inspect_reads_live_state_without_waiting(name: str) -> None:
    lock, d = procshare_lib.Lock(name=f"{name}.lock"), procshare_lib.Dict(name=f"{name}.dict")
    q = procshare_lib.JoinableQueue(name=f"{name}.queue")
    d.update({"a": 1, "b": [2]})
    q.put("message")
    lock.acquire()
    waiter = mp.get_context("fork").Process(target=_wait_for_lock, args=(lock,))
    waiter.start()
    try:
        deadline = time.monotonic() + 30
        while lock._state()[1] == 0:  # until it sleeps on the word
            assert time.monotonic() < deadline
            time.sleep(0.01)
        shown = json.loads(procshare("inspect", f"{name}.lock", "--json").stdout)
        assert shown["kind"] == "lock" and shown["creator_pid"] == os.getpid()
        assert shown["state"] == {"held_by": os.getpid(), "holder_alive": True,
                                  "sleeping_waiters": 1}  # fmt: skip
        text = procshare("inspect", f"{name}.dict", "--limit", "1")
        assert text.returncode == 0 and "length        2" in text.stdout
        assert "preview       {\"'a'\": 1}" in text.stdout
        queue_state = json.loads(procshare("inspect", f"{name}.queue", "--json").stdout)["state"]
        assert queue_state["messages"] == 1 and queue_state["unfinished_tasks"] == 1
    finally:
        lock.release()
        waiter.join(30)
        for obj in (lock, d, q):
            obj.unlink()
    assert waiter.exitcode == 0
    missing = procshare("inspect", f"{name}.lock")
    assert missing.returncode == 1 and "no procshare object" in missing.stdout
    invalid = procshare("inspect", "bad/name")
    assert invalid.returncode == 1 and "invalid name" in invalid.stdout
    assert procshare("inspect", "x", "--limit", "-1").returncode == 2


def test_ls_json(name: str) -> None:
    counter = procshare_lib.Counter(3, name=name)
    try:
        rows = json.loads(procshare("ls", "--json").stdout)
        (row,) = [r for r in rows if r["name"] == name]
        assert row["kind"] == "counter" and row["creator_alive"] and row["mode"] == 0o600
    finally:
        counter.unlink()


def test_demo_shows_progress_and_stops_cleanly_on_ctrl_c() -> None:
    before = set(os.listdir("/dev/shm"))
    run = subprocess.Popen(
        [sys.executable, "-m", "procshare", "demo", "--procs", "8", "--incs", "3000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert run.stderr is not None
    try:
        while not any(ln.startswith("[counter 1/9]") for ln in lines):  # a line per case
            line = run.stderr.readline()
            assert line, "the demo ended before its first counter case"
            lines.append(line)
        assert [ln for ln in lines if ln.startswith("[list ")][-1].startswith("[list 4/4]")
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:  # whatever failed, the demo does not outlive the test
            run.send_signal(signal.SIGINT)
            run.wait(30)
    assert run.returncode == 130, err
    assert "Traceback" not in err and "procshare demo: interrupted" in err
    time.sleep(0.5)
    assert not {f for f in set(os.listdir("/dev/shm")) - before if f.startswith("procshare.")}


def test_demo_and_bench_speak_json(tmp_path: Any) -> None:
    demo = procshare("demo", "--procs", "3", "--incs", "20", "--messages", "100", "--json")
    assert demo.returncode == 0, demo.stderr
    result = json.loads(demo.stdout)  # the whole of stdout is one JSON object
    assert result["procshare_exact"] is True and len(result["list"]) == 4
    counter = {row["implementation"]: row for row in result["counter"]}
    assert counter["procshare Manager Value, no lock"]["got"] == 60
    assert all(row["sum_right"] for row in result["messages"])
    path = tmp_path / "figures.json"
    bench = procshare("bench", "--quick", "--only", "managers", "--json", str(path))
    assert bench.returncode == 0, bench.stderr
    figures = json.loads(path.read_text())
    assert figures["run"]["repeats"] == 1
    rows = figures["sections"]["managers"]
    assert len(rows) == 6 and all(ps > 0 and mp > 0 for _, ps, mp in rows)


def test_bench_plots_what_it_measured(tmp_path: Any) -> None:
    path = tmp_path / "bench.png"
    r = procshare("bench", "--quick", "--only", "managers", "--plot", str(path))
    assert r.returncode == 0, r.stderr
    assert f"plotted to {path}" in r.stdout
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
