"""P1 — DIMSE ingest, radai against Orthanc (see BENCHMARKS.md).

500 CT slices (512×512, 16-bit, uncompressed, one study, generated deterministically from
pydicom-data's 693_UNCR.dcm with new UIDs) are sent with DCMTK's storescu to a fresh
``radai serve`` (SQLite) and to a fresh Debian Orthanc (default SQLite index, storage
compression off), on one association and on 4 parallel associations, several runs in
alternating order. radai runs with 4 DIMSE processes (``dimse.processes``), as Orthanc
serves DICOM with 4 threads (``DicomThreadsCount``, default 4): each side can then work
on 4 associations at once, and radai's associations do not share one interpreter lock.
Every process runs with ``TCP_NODELAY=1`` (DCMTK leaves Nagle's algorithm on without
it). Both acknowledge an instance once its file is on disk and its index committed:
radai (``archive.fsync``, its default) after the file and its folder entry are flushed,
Orthanc after its file is flushed (``SyncStorageArea``, its default since 1.7.4); both
SQLite indexes run in WAL mode with ``synchronous=NORMAL`` (the pragmas in Debian's
Orthanc 1.10 binary).

Prints the median instances/s and MB/s of each, the ratio radai/Orthanc, and the median
CPU time the server spent per instance (all its processes and threads, from /proc).

    .venv/bin/python benchmarks/ingest.py [--runs 5] [--count 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.data import ct_series, to_bytes
from tests.fixtures.peers import (
    LOOPBACK,
    make_orthanc,
    require_program,
    start_radai,
    stop_process,
)

STUDY = "1.2.826.0.1.3680043.10.995.1"
SERIES = STUDY + ".1"


def make_inputs(folder: Path, count: int) -> list[Path]:
    """The benchmark's instances, the same bytes on every run."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in ct_series(count, study_uid=STUDY, series_uid=SERIES, patient_id="P-BENCH-1"):
        path = folder / f"ct{int(ds.InstanceNumber):04d}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return paths


_TICKS = os.sysconf("SC_CLK_TCK")


def _process_tree(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                children.append(int(entry.name))
    return [pid, *(p for child in children for p in _process_tree(child))]


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


@dataclass
class Run:
    """One timed send: wall seconds, and server CPU seconds."""

    seconds: float
    cpu: float


def send(ae_title: str, port: int, paths: list[Path], associations: int) -> float:
    """Seconds for storescu to send every file over ``associations`` parallel associations."""
    storescu = require_program("storescu")
    env = {**os.environ, "TCP_NODELAY": "1"}
    chunks = [paths[i::associations] for i in range(associations)]
    start = time.perf_counter()
    procs = [subprocess.Popen([storescu, "-aet", "BENCH", "-aec", ae_title, LOOPBACK, str(port),
                               *map(str, chunk)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
             for chunk in chunks]
    outputs = [p.communicate()[0] for p in procs]
    elapsed = time.perf_counter() - start
    for p, out in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"storescu failed ({p.returncode}):\n{out.decode(errors='replace')[-2000:]}")
    return elapsed


def run_radai(work: Path, paths: list[Path], associations: int, processes: int) -> Run:
    server = start_radai(work / "radai", env={"TCP_NODELAY": "1"},
                         extra={"dimse": {"processes": processes}})
    try:
        pids = _process_tree(server.proc.pid)
        cpu = cpu_seconds(pids)
        seconds = send(server.ae_title, server.dicom_port, paths, associations)
        cpu = cpu_seconds(pids) - cpu
        stored = sum(1 for _ in (server.data_dir / "instances").rglob("*.dcm"))
        if stored != len(paths):
            raise RuntimeError(f"radai stored {stored} of {len(paths)} instances")
        return Run(seconds, cpu)
    finally:
        stop_process(server.proc)
        shutil.rmtree(work / "radai", ignore_errors=True)


def run_orthanc(work: Path, paths: list[Path], associations: int) -> Run:
    # Orthanc reads TCP_NODELAY from its environment like the other DCMTK programs.
    previous = os.environ.get("TCP_NODELAY")
    os.environ["TCP_NODELAY"] = "1"
    try:
        orthanc = make_orthanc(work / "orthanc", extra={"Plugins": []})
    finally:
        if previous is None:
            os.environ.pop("TCP_NODELAY", None)
    try:
        assert orthanc.proc is not None
        pids = _process_tree(orthanc.proc.pid)
        cpu = cpu_seconds(pids)
        seconds = send(orthanc.ae_title, orthanc.dicom_port, paths, associations)
        cpu = cpu_seconds(pids) - cpu
        stats = httpx.get(orthanc.url + "/statistics", timeout=60).json()
        if int(stats["CountInstances"]) != len(paths):
            raise RuntimeError(f"Orthanc stored {stats['CountInstances']} of {len(paths)} instances")
        return Run(seconds, cpu)
    finally:
        orthanc.stop()
        shutil.rmtree(work / "orthanc", ignore_errors=True)


@dataclass
class Series:
    """Timings of one peer at one association count."""

    runs: list[Run]

    def median_rate(self, count: int) -> float:
        return count / statistics.median(r.seconds for r in self.runs)

    def median_cpu_ms(self, count: int) -> float:
        return 1000 * statistics.median(r.cpu for r in self.runs) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per peer and association count")
    parser.add_argument("--count", type=int, default=500, help="instances per run")
    parser.add_argument("--associations", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--radai-processes", type=int, default=4,
                        help="radai's dimse.processes: DIMSE processes sharing the port "
                             "(default 4, as Orthanc's DicomThreadsCount)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where inputs and both archives live (default: the system temporary folder)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="radai-bench-ingest-", dir=args.work_dir))
    try:
        paths = make_inputs(work / "inputs", args.count)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{len(paths)} instances, {megabytes:.1f} MB, {os.cpu_count()} CPUs; radai with "
              f"{args.radai_processes} DIMSE process(es); {args.runs} runs each, medians", flush=True)
        peers: dict[str, Callable[[Path, list[Path], int], Run]] = {
            "radai": lambda w, p, a: run_radai(w, p, a, args.radai_processes), "orthanc": run_orthanc}
        results: dict[tuple[str, int], Series] = {}
        for associations in args.associations:
            for run in range(args.runs):
                # Alternate who goes first: the machine is shared and noisy.
                order = list(peers) if run % 2 == 0 else list(reversed(peers))
                for name in order:
                    result = peers[name](work, paths, associations)
                    results.setdefault((name, associations), Series([])).runs.append(result)
                    rate = len(paths) / result.seconds
                    print(f"  run {run + 1} {name:7s} x{associations}: {rate:7.1f} inst/s"
                          f"  {1000 * result.cpu / len(paths):5.2f} ms CPU/inst", flush=True)
        print()
        print(f"{'associations':>12} {'peer':>8} {'inst/s':>9} {'MB/s':>8} {'CPU ms/inst':>12}")
        for associations in args.associations:
            rates = {}
            for name in peers:
                series = results[(name, associations)]
                rate = series.median_rate(len(paths))
                rates[name] = rate
                print(f"{associations:>12} {name:>8} {rate:9.1f} {rate * megabytes / len(paths):8.1f}"
                      f" {series.median_cpu_ms(len(paths)):12.2f}")
            ratio = rates["radai"] / rates["orthanc"]
            print(f"{associations:>12} {'ratio':>8} {ratio:9.2f}  (radai/Orthanc)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
