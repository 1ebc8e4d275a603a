"""How long from launching segstudio until its window is on screen, against the time `import torch` takes.

Every run is a fresh process: `python -m segstudio` with SEGSTUDIO_STARTUP_PROBE=<file>, which makes the
main window write the wall-clock time of its first show and first paint (and how far torch's import had
got) and then quit. Runs of the app and of the baselines are interleaved so load from other programs on
the machine spreads over all of them. Without a DISPLAY (or Wayland) the offscreen Qt platform is used.

    python benchmarks/bench_startup.py [--runs 7] [-- APP ARGS...]

Prints every run, then min/median per measure and whether the window beat torch's import.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE_VAR = "SEGSTUDIO_STARTUP_PROBE"

# Each baseline prints time.time() once its work is done, so it is timed like the app: launch -> moment.
BASELINES = {
    "python (bare interpreter)": "import time; print(repr(time.time()))",
    "import torch": "import time, torch; print(repr(time.time()))",
}


class RunFailed(RuntimeError):
    pass


def child_environment(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    # The checkout's code is measured even when another segstudio is installed in the environment.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    # Settings and autosaves go to a scratch folder: the user's own are neither read nor changed.
    env["SEGSTUDIO_DATA_DIR"] = str(scratch / "data")
    env["XDG_CONFIG_HOME"] = str(scratch / "config")
    env.pop(PROBE_VAR, None)
    return env


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def time_app(python: str, app_args: list[str], env: dict[str, str], probe: Path, timeout: float) -> dict:
    probe.unlink(missing_ok=True)
    env = {**env, PROBE_VAR: str(probe)}
    started = time.time()
    try:
        proc = subprocess.run(
            [python, "-m", "segstudio", *app_args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        # A window that shows but never reports means the probe is not called from gui/app.py.
        raise RunFailed(
            f"segstudio did not report within {timeout:.0f} s and was stopped; check that run_app() calls "
            "install_startup_probe(window) before window.show()"
        ) from None
    exited = time.time()
    if not probe.exists():
        raise RunFailed(f"segstudio exited with code {proc.returncode} before its window showed:\n{_tail(proc.stderr)}")
    record = json.loads(probe.read_text(encoding="utf-8"))
    painted = record.get("painted_at")
    return {
        "show": record["shown_at"] - started,
        "paint": None if painted is None else painted - started,
        "exit": exited - started,
        "torch_at_show": record.get("torch_at_show", "?"),
        "torch_at_paint": record.get("torch_at_paint", "?"),
    }


def time_baseline(python: str, code: str, env: dict[str, str], timeout: float) -> float:
    started = time.time()
    try:
        proc = subprocess.run([python, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunFailed(f"`python -c {code!r}` took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise RunFailed(f"`python -c {code!r}` failed:\n{_tail(proc.stderr)}")
    return float(proc.stdout.strip().splitlines()[-1]) - started


def summary(values: list[float]) -> str:
    return f"min {min(values):6.3f} s   median {statistics.median(values):6.3f} s   max {max(values):6.3f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per measure (default 7)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as hung")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs segstudio")
    parser.add_argument("app_args", nargs="*", help="arguments for segstudio (after --), e.g. -- --sample")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="segstudio-startup-") as tmp:
        scratch = Path(tmp)
        env = child_environment(scratch)
        print(f"segstudio startup, {args.runs} fresh processes each; python {args.python}")
        print(f"Qt platform: {env.get('QT_QPA_PLATFORM', 'default (display)')}; app args: {args.app_args or 'none'}")
        app_runs: list[dict] = []
        baseline_runs: dict[str, list[float]] = {name: [] for name in BASELINES}
        try:
            for i in range(args.runs):
                run = time_app(args.python, args.app_args, env, scratch / "probe.json", args.timeout)
                app_runs.append(run)
                line = [f"run {i + 1}: window shown {run['show']:.3f} s"]
                if run["paint"] is not None:
                    line.append(f"painted {run['paint']:.3f} s")
                line.append(f"torch at show: {run['torch_at_show']}, at paint: {run['torch_at_paint']}")
                for name, code in BASELINES.items():
                    took = time_baseline(args.python, code, env, args.timeout)
                    baseline_runs[name].append(took)
                    line.append(f"{name}: {took:.3f} s")
                print("  " + "; ".join(line), flush=True)
        except RunFailed as exc:
            print(f"\nbenchmark stopped: {exc}", file=sys.stderr)
            return 1

    shown = [r["show"] for r in app_runs]
    painted = [r["paint"] for r in app_runs if r["paint"] is not None]
    torch_import = baseline_runs["import torch"]
    print()
    print(f"{'launch -> window shown':38s} {summary(shown)}")
    if painted:
        print(f"{'launch -> first paint':38s} {summary(painted)}")
    for name, values in baseline_runs.items():
        print(f"{'launch -> ' + name:38s} {summary(values)}")
    print(f"{'launch -> app exited':38s} {summary([r['exit'] for r in app_runs])}")

    ratio = statistics.median(shown) / statistics.median(torch_import)
    print(f"\nwindow shown / import torch (medians): {ratio:.2f}")
    before = sum(r["torch_at_show"] != "imported" for r in app_runs)
    print(f"torch not yet imported when the window showed: {before}/{len(app_runs)} runs")
    if painted:
        before_paint = sum(r["torch_at_paint"] != "imported" for r in app_runs if r["paint"] is not None)
        print(f"torch not yet imported at the first paint:      {before_paint}/{len(painted)} runs")
    started = sum(r["torch_at_show"] == "importing" for r in app_runs)
    if started:
        # The window starts the engine import on a background thread while it is built; that is by design.
        print(
            "torch import already under way (background thread) when the window showed: "
            f"{started}/{len(app_runs)} runs"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
