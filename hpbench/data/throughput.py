"""Measure the data pipeline: synthetic frames/s, cache building frames/s, cached crops/s into a loader.

    hpbench throughput --dataset synth --frames 2000 --workers 2

One row per stage, with the CPU count, thread settings and the machine's load
average (shared machines: numbers move with the neighbours' jobs).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

__all__ = ["measure_throughput"]


def measure_throughput(
    dataset: str = "synth",
    *,
    frames: int = 2000,
    workers: int | None = None,
    size_px: int = 128,
    batch_size: int = 32,
    loader_workers: tuple[int, ...] = (0, 2),
    epochs: int = 2,
    root: str | os.PathLike[str] | None = None,
) -> list[dict[str, object]]:
    """Render ``frames`` training frames (+ a quarter for test), build their crop cache, then read the
    cache through a torch DataLoader with augmentations; returns one row per stage with rates."""
    import torch

    from hpbench.data.cache import CropDataset, CropSettings, open_crop_cache
    from hpbench.data.crop import Augmentation
    from hpbench.data.synth import synthesize

    rows: list[dict[str, object]] = []
    context = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(root) if root is not None else Path(scratch) / "data"
        summary = synthesize(dataset, target, frames=frames, workers=workers, seed=0)
        rows.append({"stage": "synthesize (render + encode + write)", "items": sum(summary.frames.values()),
                     "seconds": summary.seconds, "per_second": summary.frames_per_second,
                     "workers": summary.workers, **context})
        start = time.perf_counter()
        cache = open_crop_cache(dataset, "train", CropSettings(size_px=size_px), data_root=target,
                                cache_dir=Path(scratch) / "cache", workers=workers)
        seconds = time.perf_counter() - start
        rows.append({"stage": "crop cache (decode + centre + crop + store)", "items": len(cache),
                     "seconds": seconds, "per_second": len(cache) / seconds, "workers": workers or "auto", **context})
        dataset_ = CropDataset(cache, augmentation=Augmentation(dropout=0.05), seed=0)
        for count in loader_workers:
            loader = torch.utils.data.DataLoader(dataset_, batch_size=batch_size, shuffle=True, num_workers=count,
                                                 persistent_workers=count > 0, drop_last=True)
            for epoch in range(epochs):  # the first epoch pays for starting workers
                dataset_.set_epoch(epoch)
                start, items = time.perf_counter(), 0
                for batch in loader:
                    items += len(batch["depth"])
                seconds = time.perf_counter() - start
            rows.append({"stage": f"cached crops -> DataLoader (augmented, batch {batch_size})", "items": items,
                         "seconds": seconds, "per_second": items / seconds, "workers": count, **context})
    return rows
