"""Run segstudio's readers over a generated corpus of malformed files and print what happened.

    python scripts/fuzz_files.py [--seed N] [--kills N] [--timeout S]

The corpus (images, model files, dataset folders, and writers killed with SIGKILL) is generated into a
temporary folder; nothing outside it is touched. Every case runs in a worker process, so a crash or a hang
ends only that case. Outcomes, per family:

    clean error   refused with the package's own error (ImageReadError, CheckpointError, DatasetError, or a
                  model whose first predicted tile is not numbers: UnusableModelOutput)
    crash         any other exception, or the worker died
    hang          no answer within --timeout seconds
    silent wrong  loaded although damaged, or loaded with other content than was written
    memory        the worker's peak memory grew by more than 1 GiB in the case (or MemoryError)
    data lost     after a killed write, an entry or file no longer matches what was written

Cases expected to load count as "loaded ok". Runs in about a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz_corpus import dataset_cases, image_cases, kill_cases, model_cases  # noqa: E402

OUTCOMES = ("loaded ok", "clean error", "crash", "hang", "silent wrong", "memory", "data lost")


# --- the worker: runs cases, one JSON line each ---------------------------------------------------------

def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_case(case: dict) -> str:
    from fuzz_corpus import CHECKS

    from segstudio.core.dataset import DatasetError
    from segstudio.core.imageio import ImageReadError

    clean = (ImageReadError, DatasetError)
    if case["family"] == "model":
        from segstudio.engine.predict.predictor import UnusableModelOutput
        from segstudio.models.checkpoint import CheckpointError

        clean = clean + (CheckpointError, UnusableModelOutput)
    before = _peak_rss()
    try:
        verdict = CHECKS[case["check"]](case)
    except MemoryError:
        return "memory"
    except clean as exc:
        verdict = "clean error" if case["expect"] in ("error", "any") and str(exc) else "silent wrong"
        if case["expect"] == "ok":
            verdict = "crash"  # a good file refused
    except Exception:  # noqa: BLE001 - counting these is the point
        return "crash"
    if _peak_rss() - before > 2**30:
        return "memory"
    return verdict


def worker() -> None:
    for line in sys.stdin:
        case = json.loads(line)
        print(json.dumps({"name": case["name"], "outcome": _run_case(case)}), flush=True)


# --- the driver ------------------------------------------------------------------------------------------

def _start_worker() -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       str(Path(__file__).resolve().parent)]))
    return subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)


def run_cases(cases: list[dict], timeout: float) -> dict[str, str]:
    results: dict[str, str] = {}
    process = _start_worker()
    for case in cases:
        if process.poll() is not None:
            process = _start_worker()
        process.stdin.write(json.dumps(case) + "\n")
        process.stdin.flush()
        # The first case also pays for the worker's imports.
        ready, _, _ = select.select([process.stdout], [], [], timeout + (20 if not results else 0))
        line = process.stdout.readline() if ready else ""
        if not ready:
            results[case["name"]] = "hang"
            process.kill()
            process.wait()
        elif not line:
            results[case["name"]] = "crash"  # the worker died
            process.wait()
        else:
            results[case["name"]] = json.loads(line)["outcome"]
    process.stdin.close()
    process.wait(timeout=30)
    return results


def print_table(rows: dict[str, Counter]) -> None:
    header = ["family", "tries", *OUTCOMES]
    widths = [max(len(h), 8) for h in header]
    widths[0] = max([len(f) for f in rows] + [6])
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    total = Counter()
    for family, counts in rows.items():
        total.update(counts)
        cells = [family, str(sum(counts.values()))] + [str(counts.get(o, 0)) for o in OUTCOMES]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    cells = ["all", str(sum(total.values()))] + [str(total.get(o, 0)) for o in OUTCOMES]
    print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills", type=int, default=12, help="killed writers per kind (default 12)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--verbose", action="store_true", help="print every case that did not end well")
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    start = time.perf_counter()
    rows: dict[str, Counter] = defaultdict(Counter)
    bad: list[str] = []
    with tempfile.TemporaryDirectory(prefix="segstudio-fuzz-") as folder:
        root = Path(folder)
        cases = image_cases(root / "images", args.seed) + model_cases(root / "models", args.seed)
        cases += dataset_cases(root / "datasets", args.seed)
        results = run_cases(cases, args.timeout)
        for case in cases:
            outcome = results[case["name"]]
            rows[case["family"]][outcome] += 1
            if outcome not in ("loaded ok", "clean error"):
                bad.append(f"{case['family']}/{case['name']}: {outcome}")
        for family, outcomes in kill_cases(root / "kills", args.kills, args.seed).items():
            for name, outcome in outcomes:
                rows[family][outcome] += 1
                if outcome not in ("loaded ok", "clean error"):
                    bad.append(f"{family}/{name}: {outcome}")
    print_table(rows)
    print(f"({time.perf_counter() - start:.0f} s)")
    if bad and args.verbose:
        print("\n".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
