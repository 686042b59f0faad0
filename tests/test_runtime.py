"""The public API's behaviour (the public contract), on a tiny random model."""
import argparse
import subprocess
import sys

import numpy as np
import pytest

import edgesleep
from edgesleep.cli import main as cli


FACTS = "alice lives in paris . bob has a dog . carol works as a chef ."  # 18 tokens


def snapshot(rt):
    return (list(rt.window.tokens), {i: s.copy() for i, s in rt._memory.fast.S.items()},
            {i: (k.copy(), v.copy()) for i, (k, v) in rt.window.kv.items()}, rt._memory.head.id,
            rt.status()["tokens_consolidated"], rt._memory.journal.last_seq)


def same(a, b):
    assert a[0] == b[0] and a[3:] == b[3:]
    for i in a[1]:
        np.testing.assert_array_equal(a[1][i], b[1][i])
    for i in a[2]:
        np.testing.assert_array_equal(a[2][i][0], b[2][i][0])


def test_answer_is_a_pure_query(tiny):
    path = tiny.path
    with edgesleep.open(path, passes=2) as rt:
        rt.feed(FACTS)  # 18 tokens, L = 8: two evictions and a partial window
        before = snapshot(rt)
        first = rt.answer("where does alice live ? the weather is nice")  # crosses an eviction
        same(before, snapshot(rt))
        assert rt.answer("where does alice live ? the weather is nice") == first
        assert isinstance(first, str) and first not in ("<pad>", "<unk>")


def test_wake_steps_keep_no_hold_on_what_they_hand_out(tiny):
    """The onnx backend steps through two buffer sets it alternates between (I/O binding):
    logits returned earlier stay as they were, and stepping again from copies of an earlier
    window and fast weights repeats the same logits."""
    from edgesleep.state import FastWeights, Window

    path = tiny.path
    with edgesleep.open(path) as rt:
        backend, ids = rt.backend, rt.tokenizer.encode(FACTS)[:7]
        window, fast = Window.empty(rt.config.args), FastWeights.zeros(rt.config.args)
        for t in ids[:3]:
            backend.step(t, window, fast)
        saved = window.copy(), fast.copy()
        first = [backend.step(t, window, fast) for t in ids[3:]]
        kept = [lg.copy() for lg in first]
        again = [backend.step(t, *saved) for t in ids[3:]]
        assert not np.allclose(first[0], first[1])
        for a, b, c in zip(first, kept, again):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


def test_eviction_every_window_and_sleep_is_idempotent(tiny):
    path = tiny.path
    with edgesleep.open(path) as rt:
        L = rt.config.window
        rt.feed(" ".join(["alice"] * (L - 1)))
        assert rt.status()["window"]["fill"] == L - 1 and rt._memory.head.id == 0
        rt.feed("bob")
        st = rt.status()
        assert st["window"]["fill"] == 0 and st["tokens_consolidated"] == L and st["memory_version"] == 1
        rt.feed("carol has a cat")
        rt.sleep()
        after = snapshot(rt)
        rt.sleep()
        same(after, snapshot(rt))
        assert rt.status()["tokens_consolidated"] == L + 4


def test_one_pass_is_the_wake_pass_and_more_passes_change_the_state(tiny):
    path = tiny.path
    states = {}
    for n in (1, 3):
        with edgesleep.open(path, passes=n) as rt:
            rt.feed("alice lives in paris . bob")
            live = {i: s.copy() for i, s in rt._memory.fast.S.items()}
            rt.sleep()
            states[n] = rt._memory.consolidated.S
            if n == 1:  # a light sleep keeps exactly what the wake steps computed
                for i in live:
                    np.testing.assert_array_equal(states[1][i], live[i])
            else:
                assert rt.status()["last_sleep"]["passes"] == 3
    assert any(not np.allclose(states[1][i], states[3][i]) for i in states[1])


def test_reset_generate_and_unknown_words(tiny):
    path = tiny.path
    with edgesleep.open(path) as rt:
        assert rt.feed("zork lives in atlantis") == 4  # unknown words become <unk>
        rt.sleep()
        assert any(np.abs(s).sum() > 0 for s in rt._memory.consolidated.S.values())
        out = list(rt.generate("alice", max_tokens=5))
        assert len(out) == 5 and all(isinstance(w, str) for w in out)
        rt.reset()
        assert all(np.abs(s).sum() == 0 for s in rt._memory.fast.S.values())
        assert rt.status()["window"]["fill"] == 0
        with pytest.raises(ValueError):
            rt.answer("   ")


def test_bad_arguments(tiny, tmp_path):
    path = tiny.path
    with pytest.raises(ValueError):
        edgesleep.open(path, passes=0)
    with pytest.raises(FileNotFoundError):
        edgesleep.open(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        edgesleep.open(tmp_path)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli(["eval", "--model", str(tmp_path / "nowhere"), "--task", "facts"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    proc = subprocess.run([sys.executable, "-m", "edgesleep", "ask", "--memory", str(tmp_path / "m"), "q"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --model is needed") and proc.stderr.count("\n") == 1


def test_pass_lists_are_positive_integers(capsys):
    from edgesleep.cli import positive_ints

    assert positive_ints("1,2,4") == [1, 2, 4]
    for bad in ("0", "1,,2", "two", "", "1,-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integers"):
            positive_ints(bad)
    with pytest.raises(SystemExit):
        cli(["eval", "--model", "models/facts", "--passes", "1,0"])
    assert "give positive integers" in capsys.readouterr().err


def test_eval_cli_on_tiny_model(tiny, capsys):
    path = tiny.path
    assert cli(["eval", "--model", str(path), "--task", "facts", "--passes", "1,2", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "1-hop" in out and out.strip().splitlines()[-1].split()[0] == "2"


def test_generate_samples_and_stops(tiny):
    path = tiny.path
    with edgesleep.open(path) as rt:
        a = list(rt.generate("alice lives in", max_tokens=6, temperature=1.0, seed=3))
        rt.reset()
        b = list(rt.generate("alice lives in", max_tokens=6, temperature=1.0, seed=3))
        assert a == b and len(a) == 6  # seeded sampling is reproducible
        rt.reset()
        greedy = list(rt.generate("alice lives in", max_tokens=6))
        rt.reset()
        stopped = list(rt.generate("alice lives in", max_tokens=6, stop=[greedy[1]]))
        assert stopped == greedy[: greedy.index(greedy[1]) + 1]
        rt.reset()
        assert len(list(rt.generate("alice", max_tokens=3, temperature=0.7, top_p=1e-9, seed=0))) == 3
        with pytest.raises(ValueError):
            next(rt.generate("alice", temperature=-1))


def test_non_finite_fast_weights_are_refused(tiny, monkeypatch):
    path = tiny.path
    with edgesleep.open(path, passes=2) as rt:
        rt.feed("alice lives in paris .")
        rt.sleep()
        good = {i: s.copy() for i, s in rt._memory.consolidated.S.items()}
        head = rt._memory.head.id
        rt.feed("bob has a dog .")
        real = rt.backend.sleep_pass

        def poisoned(h, mask, fast):
            h, fast = real(h, mask, fast)
            fast.S[next(iter(fast.S))][0, 0, 0] = np.nan
            return h, fast

        monkeypatch.setattr(rt.backend, "sleep_pass", poisoned)
        with pytest.raises(FloatingPointError):
            rt.sleep()
        assert rt._memory.head.id == head
        for i, s in good.items():
            np.testing.assert_array_equal(rt._memory.consolidated.S[i], s)
