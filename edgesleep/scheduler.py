"""When to sleep deeply: on AC power or charging, or when the memory has been idle, with the
model's depth of passes and within a budget of CPU seconds and (where RAPL is readable) joules.

Power comes from `/sys/class/power_supply` on Linux (EDGESLEEP_POWER_SUPPLY overrides the
path, which is how the tests simulate a charger) and `pmset -g batt` on macOS; elsewhere it is
unknown and only idleness counts.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


def on_external_power() -> bool | None:
    """True on AC power or while charging, False on battery, None when the machine won't say."""
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["pmset", "-g", "batt"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return "AC Power" in out if out else None
    root = Path(os.environ.get("EDGESLEEP_POWER_SUPPLY", "/sys/class/power_supply"))
    if not root.is_dir():
        return None
    seen = None
    for dev in root.iterdir():
        kind = _read(dev / "type")
        if kind in ("Mains", "USB") and _read(dev / "online") is not None:
            if _read(dev / "online") == "1":
                return True
            seen = False
        elif kind == "Battery" and _read(dev / "status") is not None:
            if _read(dev / "status") in ("Charging", "Full"):
                return True
            seen = False
    return seen


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def energy_joules() -> float | None:
    """The package energy counter (RAPL), where this machine exposes it to us."""
    value = _read(RAPL)
    return int(value) / 1e6 if value and value.isdigit() else None


@dataclass
class Budget:
    cpu_s: float = 600.0  # per sleep
    joules: float | None = None  # per sleep, where RAPL is readable


class Policy:
    """Deep sleep is allowed on external power, or after `idle_s` without use of the memory."""

    def __init__(self, memory_dir: Path, idle_s: float = 300.0):
        self.memory_dir, self.idle_s = Path(memory_dir), idle_s

    def last_use(self) -> float:
        journal = self.memory_dir / "journal.log"
        return journal.stat().st_mtime if journal.exists() else 0.0

    def reason(self) -> str | None:
        """Why a deep sleep may run now, or None."""
        if on_external_power():
            return "external power"
        if time.time() - self.last_use() >= self.idle_s:
            return "idle"
        return None


def log_sleep(memory_dir: Path, record: dict) -> None:
    """Append one sleep to `sleep.log` (JSON lines) in the memory folder; status reads it."""
    with open(Path(memory_dir) / "sleep.log", "a") as f:
        f.write(json.dumps(record) + "\n")


def read_sleep_log(memory_dir: Path, last: int = 5) -> list[dict]:
    path = Path(memory_dir) / "sleep.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines()[-last:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def daemon(model: str | Path, memory: Path, passes: int | None, policy: Policy, budget: Budget,
           poll_s: float = 30.0, rounds: int | None = None, say=print) -> int:
    """Deep-sleep `memory` whenever the policy allows, within the budget. Between sleeps the
    memory is left unlocked for the user's own feeds and questions. `passes` None: the deepest the
    model was trained for. Returns deep sleeps run."""
    from edgesleep.memory import MemoryError_
    from edgesleep.runtime import Runtime

    slept, n = 0, 0
    while rounds is None or n < rounds:
        n += 1
        reason = policy.reason()
        if reason:
            try:
                rt = Runtime(model, memory=memory, passes=passes)
            except MemoryError_ as e:
                if "in use" not in str(e):
                    raise
                rt = None  # the user has it open: try again later
            if rt is not None:
                with rt:
                    if rt.needs_sleep():
                        cpu0, j0 = time.process_time(), energy_joules()

                        def over_budget() -> bool:
                            j = energy_joules()
                            return (policy.reason() is None or time.process_time() - cpu0 > budget.cpu_s
                                    or (budget.joules is not None and j is not None and j0 is not None
                                        and j - j0 > budget.joules))

                        cost = rt.sleep(should_stop=over_budget)
                        j1 = energy_joules()
                        rec = {"t": time.time(), "reason": reason, "done": cost is not None,
                               "passes": rt.passes, "cpu_s": round(time.process_time() - cpu0, 4),
                               "tokens": cost.tokens if cost else None,
                               "joules": None if j0 is None or j1 is None else round(j1 - j0, 3)}
                        log_sleep(memory, rec)
                        say(f"deep sleep ({reason}): " + ", ".join(f"{k} {v}" for k, v in rec.items() if k != "t"))
                        slept += cost is not None
        if rounds is None or n < rounds:
            time.sleep(poll_s)
    return slept
