"""``python -m lab.perf.native`` runs in a real ComfyUI at the tiny size and prints its tables.

Timings are not asserted (docs/performance.md holds the measured figures); the storage
count is: Apply AID holds one copy of the UNet, the old path two. Run with
``make test-comfyui``; skipped with one line elsewhere.
"""

from __future__ import annotations

import re

from comfyui_host import import_comfyui

import_comfyui()

from lab.perf.native import main  # noqa: E402


def test_the_native_benchmark_prints_its_memory_and_speed_tables(capsys) -> None:
    assert main(["--memory-config", "tiny", "--speed-config", "tiny", "--steps", "2",
                 "--repeats", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("$ python -m lab.perf.native --memory-config tiny")

    memory = out[out.index("**Memory:"):out.index("**Speed:")]
    copies = re.search(r"^\| UNet copies [^|]*\| ([\d.]+) \| ([\d.]+) \|$", memory, re.M)
    assert copies and copies.groups() == ("1.00", "2.00"), memory
    assert re.search(r"^\| Apply AID's clone \(shares the MODEL's UNet\) \| 0 \|", memory, re.M)
    assert re.search(r"^\| second UNet \(library, load_svd\) \| — \| [\d.,]+ MiB \|$", memory,
                     re.M)

    speed = out[out.index("**Speed:"):]
    for side in ("library: AIDPipeline", "library, one-token shortcut off", "native: Apply AID",
                 "native, attention_pytorch"):
        # Both sides run the same work: 2 steps, the three branches of T = 6 in one call.
        assert re.search(rf"^\| {re.escape(side)}[^|]*\| [\d.]+ ms \([^|]*\) \| [\d.]+× \|"
                         r"[^|]*\| 2 × 18 \|$", speed, re.M), speed
