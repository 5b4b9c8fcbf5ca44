"""Featurizer speed and memory: random 200 bp peaks (the paper's 76,218 GM12878 peaks) and 20 bp probes.

    python -m experiments.benchmark only=featurize
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import numpy as np

N_PEAKS = 76_218
N_PROBES = 200_000

# Run in a fresh interpreter so that the peak RSS belongs to featurizing alone (Linux /proc).
_RSS_SCRIPT = """
import json, sys
import numpy as np
from bindvae.features.kmers import Vocabulary, featurize
def status_kib(field):  # VmRSS: now; VmHWM: peak since the last reset
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))
n, length = int(sys.argv[1]), int(sys.argv[2])
codes = np.random.default_rng(0).integers(0, 4, size=(n, length), dtype=np.uint8)
seqs = [row.tobytes().decode() for row in np.frombuffer(b"ACGT", np.uint8)[codes]]
featurize(seqs[:10], Vocabulary.gapped8())
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # resets VmHWM to the current RSS
before = status_kib("VmRSS")
X = featurize(seqs)
out_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
print(json.dumps({"delta_mb": (status_kib("VmHWM") - before) / 1024, "csr_mb": out_mb, "nnz": int(X.nnz)}))
"""


def random_sequences(n: int, length: int, seed: int = 0) -> list[str]:
    """``n`` uniform random ACGT strings of ``length`` bp."""
    codes = np.random.default_rng(seed).integers(0, 4, size=(n, length), dtype=np.uint8)
    return [row.tobytes().decode() for row in np.frombuffer(b"ACGT", np.uint8)[codes]]


def _median_seconds(fn, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def _peak_rss(n: int, length: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(n), str(length)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(quick: bool, repeats: int) -> list[dict]:
    from bindvae.features.kmers import Vocabulary, _gapped8_tables, featurize

    vocab = Vocabulary.gapped8()
    n_peaks = 10_000 if quick else N_PEAKS
    n_probes = 20_000 if quick else N_PROBES
    peaks = random_sequences(n_peaks, 200, seed=1)
    probes = random_sequences(n_probes, 20, seed=2)
    featurize(peaks[:10], vocab)  # load the compiled kernel outside the timings
    # Uncached build: what the first Vocabulary.gapped8() in a process costs.
    build = _median_seconds(lambda: Vocabulary(*_gapped8_tables.__wrapped__()), 1 if quick else repeats)
    peak_s = _median_seconds(lambda: featurize(peaks, vocab), repeats)
    # CPU seconds of all threads: less sensitive than wall time to other load on a shared machine.
    peak_cpu = _median_seconds(lambda: featurize(peaks, vocab), repeats, clock=time.process_time)
    probe_s = _median_seconds(lambda: featurize(probes, vocab), repeats)
    rss = _peak_rss(n_peaks, 200)
    return [
        {"benchmark": f"featurize {n_peaks:,} random 200 bp peaks", "value": n_peaks / peak_s, "unit": "sequences/s",
         "notes": f"{peak_s:.2f} s per run; {rss['nnz']:,} nonzeros"},
        {"benchmark": f"featurize {n_peaks:,} random 200 bp peaks, CPU time", "value": peak_cpu, "unit": "CPU s",
         "notes": f"all threads; {n_peaks / peak_cpu:,.0f} sequences per CPU second"},
        {"benchmark": f"featurize {n_probes:,} random 20 bp probes", "value": n_probes / probe_s, "unit": "sequences/s",
         "notes": f"{probe_s:.2f} s per run"},
        {"benchmark": f"peak RSS increase, {n_peaks:,} peaks", "value": rss["delta_mb"], "unit": "MiB",
         "notes": f"output CSR is {rss['csr_mb']:.0f} MiB; a dense matrix would be "
                  f"{n_peaks * len(vocab) * 4 / 2**20:,.0f} MiB"},
        {"benchmark": "build the gapped 8-mer vocabulary and window table", "value": build, "unit": "s",
         "notes": "once per process (cached)"},
    ]
