"""The memory folder: persistence, crash safety, corruption, the lock, correction, the daemon."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import edgesleep
from edgesleep.cli import main as cli
from edgesleep.memory import MemoryError_


LINES = [f"{n} lives in {c} . {n} has a {p} ." for n, c, p in zip(
    "alice bob carol dave erin frank grace heidi ivan judy kevin laura".split(),
    "paris rome berlin madrid lisbon vienna prague oslo dublin athens warsaw zurich".split(),
    "cat dog parrot rabbit turtle hamster goldfish lizard cat dog parrot rabbit".split())]


def state(rt):
    return {i: s.copy() for i, s in rt._memory.fast.S.items()}, list(rt.window.tokens)


def assert_same_state(a, b):
    assert a[1] == b[1]
    for i in a[0]:
        np.testing.assert_array_equal(a[0][i], b[0][i])


def fed_fresh(path, records, passes=1):
    """The state of a fresh ephemeral memory fed these journal records."""
    rt = edgesleep.open(path, passes=passes)
    for r in records:
        rt._consume(rt._memory.append(r.ids))
    return rt


@pytest.mark.parametrize("which", ["tiny", "anchored"])
def test_recall_survives_a_restart(which, tmp_path, request):
    model = request.getfixturevalue(which).path
    with edgesleep.open(model, memory=tmp_path / "m", passes=2) as rt:
        for line in LINES[:3]:
            rt.feed(line)
        before = state(rt)
        answer = rt.answer("where does alice live ?")
    with edgesleep.open(model, memory=tmp_path / "m", passes=2) as rt:
        assert_same_state(before, state(rt))
        assert rt.answer("where does alice live ?") == answer
        rt.sleep()
        deep = state(rt)
    with edgesleep.open(model, memory=tmp_path / "m") as rt:
        assert_same_state(deep, state(rt))
        assert rt._memory.head.deep and rt._memory.head.passes == 2


def test_second_opener_is_refused(tiny, tmp_path):
    model = tiny.path
    with edgesleep.open(model, memory=tmp_path / "m"):
        with pytest.raises(MemoryError_, match="in use by pid"):
            edgesleep.open(model, memory=tmp_path / "m")
        proc = subprocess.run([sys.executable, "-m", "edgesleep", "status", "--memory", str(tmp_path / "m")],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.startswith("error: memory") and "in use" in proc.stderr
    edgesleep.open(model, memory=tmp_path / "m").close()  # released on close


def test_wrong_model_and_newer_format_are_refused(tiny, tmp_path):
    model = tiny.path
    edgesleep.open(model, memory=tmp_path / "m").close()
    meta = tmp_path / "m" / "memory.json"
    text = meta.read_text()
    meta.write_text(text.replace('"fingerprint": "', '"fingerprint": "00'))
    with pytest.raises(MemoryError_, match="corrupt"):  # the edit breaks its checksum
        edgesleep.open(model, memory=tmp_path / "m")
    import hashlib
    import json
    for key, value, expect in (("fingerprint", "0" * 64, "another model"), ("format", 99, "upgrade edgesleep")):
        body = {k: v for k, v in json.loads(text).items() if k != "sha256"}
        body[key] = value
        body["sha256"] = hashlib.sha256(json.dumps({k: v for k, v in body.items() if k != "sha256"},
                                                   sort_keys=True).encode()).hexdigest()
        meta.write_text(json.dumps(body))
        with pytest.raises(MemoryError_, match=expect):
            edgesleep.open(model, memory=tmp_path / "m")


def test_corrupt_version_falls_back_and_torn_journal_tail_is_cut(tiny, tmp_path, capsys):
    model = tiny.path
    mem = tmp_path / "m"
    with edgesleep.open(model, memory=mem) as rt:
        for line in LINES[:4]:
            rt.feed(line)
        expected = state(rt)
        head = rt._memory.head.id
    newest = mem / "versions" / f"v{head:08d}.fw"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with open(mem / "journal.log", "ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a torn append
    with edgesleep.open(model, memory=mem) as rt:
        assert any("version" in w and "fell back" in w for w in rt.warnings)
        assert any("torn tail" in w for w in rt.warnings)
        assert_same_state(expected, state(rt))  # the older version plus journal replay: nothing lost
    # the CLI says it in one warning line per problem and exits 0
    newest = max((mem / "versions").glob("v*.fw"))
    newest.write_bytes(newest.read_bytes()[:-5])
    assert cli(["status", "--memory", str(mem)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: version") and "Traceback" not in err


def test_forget_is_replay_without_the_input(tiny, tmp_path):
    model = tiny.path
    with edgesleep.open(model, memory=tmp_path / "m") as rt:
        for line in LINES[:6]:
            rt.feed(line)
        assert rt.forget("carol") == 1
        records = list(rt._memory.journal.records)
        assert all(rt.tokenizer.encode("carol")[0] not in r.ids for r in records)
        forgotten = state(rt)
    fresh = fed_fresh(model, records)
    assert_same_state(forgotten, state(fresh))
    fresh.close()


def test_rollback_and_reset(tiny, tmp_path):
    model = tiny.path
    with edgesleep.open(model, memory=tmp_path / "m") as rt:
        rt.feed(LINES[0] + " " + LINES[1] + " " + LINES[2])  # one eviction: version 1
        v1, s1 = rt._memory.head.id, state(rt)
        rt.feed(LINES[3] + " " + LINES[4])
        rt.reset()
        assert all(np.abs(s).sum() == 0 for s in rt._memory.fast.S.values())
        rt.rollback(v1)
        assert_same_state(s1, state(rt))
        with pytest.raises(ValueError, match="no version"):
            rt.rollback(999)


@pytest.mark.parametrize("which", ["tiny", "anchored"])
def test_deep_sleep_is_resumable(which, tmp_path, request):
    model = request.getfixturevalue(which).path
    text = " ".join(LINES[:5])
    with edgesleep.open(model, memory=tmp_path / "a", passes=3) as rt:
        rt.feed(text)
        calls = []
        assert rt.sleep(should_stop=lambda: len(calls) > 1 or calls.append(1)) is None  # stopped early
        assert (tmp_path / "a" / "deep.partial").exists() and not rt._memory.head.deep
        assert rt.sleep().tokens == len(text.split())
        resumed = state(rt)
    with edgesleep.open(model, memory=tmp_path / "b", passes=3) as rt:
        rt.feed(text)
        rt.sleep()
        assert_same_state(resumed, state(rt))


WORKER = textwrap.dedent("""
    import sys, edgesleep
    model, mem, mode = sys.argv[1:4]
    lines = sys.stdin.read().splitlines()
    rt = edgesleep.open(model, memory=mem, passes=3)
    if mode == "feed":
        for i, line in enumerate(lines):
            rt.feed(line)
            print(i, flush=True)
    else:
        print("sleeping", flush=True)
        rt.sleep()
        print("done", flush=True)
""")


def run_until_killed(model, mem, mode, lines, after_s, after_line=None):
    """Kill -9 the worker `after_s` seconds after it starts, or after it prints `after_line`."""
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(model), str(mem), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdin.write("\n".join(lines))
    proc.stdin.close()
    out = []
    while after_line is not None and after_line not in out:
        line = proc.stdout.readline()
        if not line:  # the worker died before saying it: its stderr tells why
            break
        out.append(line.strip())
    time.sleep(after_s)
    proc.send_signal(signal.SIGKILL)
    out += proc.stdout.read().split()
    proc.wait()
    return out


def deep_sleep_seconds(model, mem) -> float:
    """How long the worker's deep sleep of `mem` takes on this machine now (on a copy), from the
    line `sleeping` to the line `done`: kills are timed against it, so that they land inside the
    sleep on a fast idle machine as well as on a loaded one."""
    scratch = mem.parent / "calibration"
    shutil.copytree(mem, scratch)
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(model), str(scratch), "sleep"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "sleeping"
    t0 = time.perf_counter()
    assert proc.stdout.readline().strip() == "done"
    seconds = time.perf_counter() - t0
    proc.wait()
    shutil.rmtree(scratch)
    return seconds


TRIALS = int(os.environ.get("EDGESLEEP_CRASH_TRIALS", "6"))


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_9_during_feed_loses_nothing(tiny, tmp_path, trial):
    model = tiny.path
    rng = random.Random(trial)
    lines = [rng.choice(LINES) for _ in range(40)]
    acked = run_until_killed(model, tmp_path / "m", "feed", lines, rng.uniform(1.0, 4.0))
    with edgesleep.open(model, memory=tmp_path / "m", passes=3) as rt:
        records = list(rt._memory.journal.records)
        # every feed that returned is in the journal, in order (one more may have landed)
        assert len(records) in (len(acked), len(acked) + 1)
        for r, line in zip(records, lines):
            assert r.ids == rt.tokenizer.encode(line)
        recovered = state(rt)
    fresh = fed_fresh(model, records, passes=3)
    assert_same_state(recovered, state(fresh))
    fresh.close()


@pytest.mark.parametrize("trial", range(max(1, TRIALS // 2)))
def test_kill_9_during_deep_sleep_loses_nothing(tiny, tmp_path, trial):
    model = tiny.path
    rng = random.Random(100 + trial)
    text = " ".join(rng.choice(LINES) for _ in range(60))
    with edgesleep.open(model, memory=tmp_path / "m", passes=3) as rt:
        rt.feed(text)
    # a deep sleep of these 75 windows takes a few tenths of a second: kill somewhere inside it
    seconds = deep_sleep_seconds(model, tmp_path / "m")
    out = run_until_killed(model, tmp_path / "m", "sleep", [], rng.uniform(0.05, 0.7) * seconds, after_line="sleeping")
    KILLED_MID_SLEEP.append("done" not in out)
    with edgesleep.open(model, memory=tmp_path / "m", passes=3) as rt:
        assert sum(len(r.ids) for r in rt._memory.journal.records) == len(text.split()) or rt._memory.head.deep
        rt.sleep()
        after_crash = state(rt)
    fresh = edgesleep.open(model, passes=3)
    fresh.feed(text)
    fresh.sleep()
    assert_same_state(after_crash, state(fresh))
    fresh.close()



KILLED_MID_SLEEP: list[bool] = []


def test_some_kills_landed_inside_deep_sleep():
    """The trials above test something only if kills land before the sleep is done."""
    if not KILLED_MID_SLEEP:
        pytest.skip("no deep-sleep kill trial ran")
    print(f"{sum(KILLED_MID_SLEEP)} of {len(KILLED_MID_SLEEP)} kills landed inside deep sleep")  # with -s
    assert any(KILLED_MID_SLEEP), KILLED_MID_SLEEP


def test_daemon_sleeps_on_external_power(tiny, tmp_path, monkeypatch):
    model = tiny.path
    mem = tmp_path / "m"
    with edgesleep.open(model, memory=mem) as rt:
        rt.feed(" ".join(LINES[:4]))
    supply = tmp_path / "power_supply"
    (supply / "AC").mkdir(parents=True)
    (supply / "AC" / "type").write_text("Mains\n")
    (supply / "AC" / "online").write_text("0\n")
    monkeypatch.setenv("EDGESLEEP_POWER_SUPPLY", str(supply))
    assert cli(["daemon", "--memory", str(mem), "--idle", "3600", "--rounds", "1", "--poll", "0"]) == 0
    with edgesleep.open(model, memory=mem) as rt:
        assert not rt._memory.head.deep  # on battery and not idle: no deep sleep
    (supply / "AC" / "online").write_text("1\n")  # plugged in
    assert cli(["daemon", "--memory", str(mem), "--idle", "3600", "--rounds", "1", "--poll", "0",
                "--passes", "2"]) == 0
    with edgesleep.open(model, memory=mem) as rt:
        assert rt._memory.head.deep and rt._memory.head.passes == 2
    assert "external power" in (mem / "sleep.log").read_text()


def test_daemon_sleeps_when_idle(tiny, tmp_path, monkeypatch):
    model = tiny.path
    mem = tmp_path / "m"
    with edgesleep.open(model, memory=mem) as rt:
        rt.feed(" ".join(LINES[:4]))
    monkeypatch.setenv("EDGESLEEP_POWER_SUPPLY", str(tmp_path / "none"))  # power unknown
    old = time.time() - 7200
    os.utime(mem / "journal.log", (old, old))
    assert cli(["daemon", "--memory", str(mem), "--idle", "600", "--rounds", "1", "--poll", "0"]) == 0
    with edgesleep.open(model, memory=mem) as rt:
        assert rt._memory.head.deep and rt._memory.head.passes == 2  # the deepest the tiny model was trained for


def test_daemon_stops_after_its_rounds_whatever_the_depth(tiny, tmp_path, monkeypatch):
    """--rounds counts polls; a sleep of depth 1 (below the rounds) once reset the count."""
    from edgesleep.scheduler import Budget, Policy, daemon

    mem = tmp_path / "m"
    polls = []

    class Always(Policy):
        def reason(self):
            polls.append(1)
            if len(polls) > 10:
                raise AssertionError("the daemon did not stop after its rounds")
            return "test"

    with edgesleep.open(tiny.path, memory=mem) as rt:
        rt.feed(" ".join(LINES[:4]))
    daemon(tiny.path, mem, 1, Always(mem), Budget(), poll_s=0, rounds=3, say=lambda s: None)
    assert len(polls) == 3


def test_deep_sleep_and_eval_default_to_the_models_depth(tiny, tmp_path, capsys):
    model = tiny.path
    deep3 = tmp_path / "deep3"  # the tiny model, as if trained up to N = 3: a depth no default names
    shutil.copytree(model, deep3)
    config = json.loads((deep3 / "config.json").read_text())
    (deep3 / "config.json").write_text(json.dumps({**config, "passes": [1, 2, 3]}))
    mem, src = str(tmp_path / "m"), tmp_path / "facts.txt"
    src.write_text("\n".join(LINES[:3]))
    assert cli(["feed", "--memory", mem, "--model", str(deep3), str(src)]) == 0
    assert cli(["sleep", "--memory", mem]) == 0
    with edgesleep.open(deep3, memory=mem) as rt:
        assert rt._memory.head.deep and rt._memory.head.passes == 3
    capsys.readouterr()
    assert cli(["eval", "--model", str(deep3), "--examples", "2", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["accuracy"]) == ["1", "2", "3", "4"]


def test_cli_round_trip(tiny, tmp_path, capsys, monkeypatch):
    model = tiny.path
    mem = str(tmp_path / "m")
    src = tmp_path / "facts.txt"
    src.write_text("\n".join(LINES[:3]))
    assert cli(["feed", "--memory", mem, "--model", str(model), str(src)]) == 0
    assert cli(["ask", "--memory", mem, "where does alice live ?"]) == 0
    assert cli(["sleep", "--memory", mem, "--passes", "2"]) == 0
    assert cli(["status", "--memory", mem, "--json"]) == 0
    assert cli(["backup", "--memory", mem, str(tmp_path / "bk")]) == 0
    assert cli(["forget", "--memory", mem, "bob"]) == 0
    assert cli(["restore", "--memory", mem, str(tmp_path / "bk")]) == 0
    assert cli(["rollback", "--memory", mem]) == 0
    out = capsys.readouterr().out
    assert "fed " in out and "consolidated" in out and "retracted 1" in out and "restored" in out
    (tmp_path / "bin").write_bytes(b"\x00\x01binary")
    assert cli(["feed", "--memory", mem, str(tmp_path / "bin")]) == 2
    assert capsys.readouterr().err.startswith("error: input looks binary")
