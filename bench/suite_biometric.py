"""Face verification: the service's pipeline beside the naive one, each in its own process.

* naive: ``face_recognition.load_image_file`` → ``face_encodings`` → ``face_distance`` at full
  resolution (what the library's README shows), decision ``distance <= 0.6``;
* service: :class:`jmo_biometric.adapters.engine.FaceEngine` (bytes checked, EXIF applied, detection on a
  downscaled copy, quality checks) and :func:`jmo_biometric.application.verification.judge`, as the service runs it.

A *verification* is one selfie analysed and compared with a reference embedding already known (the
service caches references). Every test image is verified at its original size, ``ROUNDS`` times;
CPU time (``time.process_time``) per verification → median and p99; peak RSS = the process's
``ru_maxrss`` (models included). Accuracy: both pipelines decide the same labelled pairs
(``services/biometric/tests/data/pairs.csv``). Throughput: the service's worker pool with 1 and 2
workers on the same images, verifications per second of wall time. One generated 14 MP photo (an
upscaled test image) shows what a large phone picture costs; it is reported apart from the medians.

Run alone: ``.venv/bin/python bench/run.py biometric`` (or ``make bench BENCH=biometric``).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "services" / "biometric" / "tests" / "data"
FACES = DATA / "faces"
ROUNDS = 3
THROUGHPUT_ROUNDS = 4
NAIVE_THRESHOLD = 0.6
#: Pictures the service refuses before computing an embedding (cheaper): also reported without them.
REFUSED_BEFORE_EMBEDDING = {"two_people.jpg", "obama_partial_face.jpg"}


def images() -> list[Path]:
    return sorted(p for p in FACES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def make_large_photo(path: Path) -> None:
    """A 14 MP JPEG (3072 x 4608) made by upscaling a test image, as a modern phone would store it.
    Made by the parent, so that its making weighs on neither pipeline's peak RSS."""
    from PIL import Image

    Image.open(FACES / "obama3.jpg").convert("RGB").resize((3072, 4608)).save(path, "JPEG", quality=90)


def large_photo() -> bytes:
    return Path(os.environ["JMO_BENCH_LARGE_PHOTO"]).read_bytes()


def _percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def _pairs() -> list[tuple[str, str, bool]]:
    from jmo_cli.calibration import read_pairs

    return [(p.a.name, p.b.name, p.same) for p in read_pairs(DATA / "pairs.csv")]


# -- the two pipelines, each run in a child process --------------------------------------------


def _naive() -> dict[str, Any]:
    import face_recognition
    import numpy as np

    references: dict[str, Any] = {}
    for path in images():
        enc = face_recognition.face_encodings(face_recognition.load_image_file(path))
        references[path.name] = enc[0] if enc else None
    reference = references["obama.jpg"]
    cpu: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for path in images():
            start = time.process_time()
            enc = face_recognition.face_encodings(face_recognition.load_image_file(path))
            _ = face_recognition.face_distance([reference], enc[0]) if enc else None
            cpu.setdefault(path.name, []).append(time.process_time() - start)
    big = large_photo()
    start = time.process_time()
    enc = face_recognition.face_encodings(face_recognition.load_image_file(io.BytesIO(big)))
    large = time.process_time() - start
    decisions = []
    for a, b, same in _pairs():
        ea, eb = references[a], references[b]
        match = ea is not None and eb is not None and float(np.linalg.norm(ea - eb)) <= NAIVE_THRESHOLD
        decisions.append(match == same)
    return {"cpu": cpu, "large_photo_cpu": large, "correct": sum(decisions), "pairs": len(decisions)}


def _service() -> dict[str, Any]:
    from jmo_biometric.adapters.engine import FaceEngine, ImageLimits
    from jmo_biometric.application.verification import DecisionPolicy, judge
    from jmo_biometric.domain.quality import QualityLimits
    from jmo_biometric.settings import DEFAULT_THRESHOLD

    engine, limits, quality = FaceEngine(), ImageLimits(), QualityLimits()
    policy = DecisionPolicy(DEFAULT_THRESHOLD, limits, quality)
    references = {p.name: engine.analyse_reference(p.read_bytes(), limits).embedding for p in images()}
    reference = references["obama.jpg"]
    cpu: dict[str, list[float]] = {}
    stages: dict[str, list[float]] = {}
    selfies = {}
    for _ in range(ROUNDS):
        for path in images():
            data = path.read_bytes()
            start = time.process_time()
            analysis = engine.analyse_selfie(data, limits, quality)
            judge(analysis, reference, policy)
            cpu.setdefault(path.name, []).append(time.process_time() - start)
            selfies[path.name] = analysis
            for k, v in analysis.timings_ms.items():
                stages.setdefault(k, []).append(v)
    big = large_photo()
    start = time.process_time()
    judge(engine.analyse_selfie(big, limits, quality), reference, policy)
    large = time.process_time() - start
    correct = 0
    pairs = _pairs()
    for a, b, same in pairs:
        correct += judge(selfies[a], references[b], policy).match == same
    return {"cpu": cpu, "large_photo_cpu": large, "correct": correct, "pairs": len(pairs), "stage_median_ms": {k: statistics.median(v) for k, v in stages.items()}}


def _throughput(workers: int) -> dict[str, Any]:
    from jmo_biometric.adapters.engine import ImageLimits
    from jmo_biometric.adapters.workers import EnginePool
    from jmo_biometric.domain.quality import QualityLimits

    async def go() -> dict[str, Any]:
        pool = EnginePool(workers)
        try:
            await pool.warm_up()
            batch = [p.read_bytes() for p in images()] * THROUGHPUT_ROUNDS
            start = time.perf_counter()
            await asyncio.gather(*(pool.selfie(d, ImageLimits(), QualityLimits()) for d in batch))
            seconds = time.perf_counter() - start
            return {"workers": workers, "verifications": len(batch), "seconds": round(seconds, 2), "per_second": round(len(batch) / seconds, 2)}
        finally:
            pool.shutdown()

    result = asyncio.run(go())
    result["largest_worker_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def _child(kind: str, arg: str = "") -> None:
    result = {"naive": _naive, "service": _service}[kind]() if kind != "throughput" else _throughput(int(arg))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def _run_child(large: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "JMO_BENCH_LARGE_PHOTO": str(large)}
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the suite --------------------------------------------------------------------------------


def _per_image(result: dict[str, Any]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in result["cpu"].items()}


def run(say: Any = print) -> dict[str, Any]:
    """Both pipelines and the throughput runs; returns the figures (also for the summary)."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        large = Path(tmp) / "large_14mp.jpg"
        make_large_photo(large)
        say("biometric: naive pipeline ...")
        naive = _run_child(large, "naive")
        say("biometric: service pipeline ...")
        service = _run_child(large, "service")
        say("biometric: throughput with 1 and 2 workers ...")
        one, two = _run_child(large, "throughput", "1"), _run_child(large, "throughput", "2")
    out: dict[str, Any] = {}
    for name, r in (("naive", naive), ("service", service)):
        every = [v for values in r["cpu"].values() for v in values]
        out[name] = {
            "cpu_s_per_verification_median": round(statistics.median(every), 3),
            "cpu_s_per_verification_p99": round(_percentile(every, 0.99), 3),
            "cpu_s_per_verification_max": round(max(every), 3),
            "cpu_s_14mp_photo": round(r["large_photo_cpu"], 3),
            "peak_rss_mb": r["peak_rss_mb"],
            "pairs_correct": f"{r['correct']}/{r['pairs']}",
            "verifications": len(every),
        }
        embedded = [v for name, values in r["cpu"].items() if name not in REFUSED_BEFORE_EMBEDDING for v in values]
        out[name]["cpu_s_median_when_embedded"] = round(statistics.median(embedded), 3)
    out["service"]["stage_median_ms"] = {k: round(v, 1) for k, v in service["stage_median_ms"].items()}
    out["per_image_cpu_s"] = {n: {"naive": round(v, 3), "service": round(_per_image(service)[n], 3)} for n, v in _per_image(naive).items()}
    out["throughput"] = {
        "1_worker_per_s": one["per_second"],
        "2_workers_per_s": two["per_second"],
        "scaling": round(two["per_second"] / one["per_second"], 2),
        "largest_worker_peak_rss_mb": two["largest_worker_peak_rss_mb"],
        "cpu_count": os.cpu_count(),
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    out["aims"] = "median <= 0.15 s, p99 <= 0.5 s, peak RSS <= 350 MB, scaling to both cores, no loss of accuracy (reported, not enforced)"
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    n, s, t = result["naive"], result["service"], result["throughput"]
    rows = [
        ("CPU s / verification, median", n["cpu_s_per_verification_median"], s["cpu_s_per_verification_median"]),
        ("  median, single-face pictures", n["cpu_s_median_when_embedded"], s["cpu_s_median_when_embedded"]),
        ("CPU s / verification, p99", n["cpu_s_per_verification_p99"], s["cpu_s_per_verification_p99"]),
        ("CPU s / verification, max", n["cpu_s_per_verification_max"], s["cpu_s_per_verification_max"]),
        ("CPU s, one 14 MP photo", n["cpu_s_14mp_photo"], s["cpu_s_14mp_photo"]),
        ("peak RSS MB (whole process)", n["peak_rss_mb"], s["peak_rss_mb"]),
        ("labelled pairs decided right", n["pairs_correct"], s["pairs_correct"]),
    ]
    lines = [f"{'face verification':32} {'naive':>10} {'service':>10}"]
    lines += [f"{label:32} {a!s:>10} {b!s:>10}" for label, a, b in rows]
    lines.append(f"throughput (service pool): 1 worker {t['1_worker_per_s']}/s, 2 workers {t['2_workers_per_s']}/s, x{t['scaling']} on {t['cpu_count']} cpus (1-min load average before/after the suite: {t['load_average_1min_before_after']}; other work on the machine distorts this figure most); largest worker peak RSS {t['largest_worker_peak_rss_mb']} MB")
    lines.append(f"service stages, median ms: {', '.join(f'{k}={v}' for k, v in s['stage_median_ms'].items())}")
    lines.append(f"({s['verifications']} verifications per pipeline: every test image at its original size x {ROUNDS}; aims: {result['aims']})")
    return lines


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(*sys.argv[1:])
    else:
        figures = run(lambda text: print(text, file=sys.stderr, flush=True))
        print("\n".join(summary_lines(figures)))
