"""Tag and embed a folder of music with Ray Data and mirkit, to Parquet.

    python crates/mirkit-py/examples/ray_pipeline.py MUSIC_DIR OUT_DIR [--cpus 2]

A stateful `mirkit.Tagger` per actor (the model is loaded once per actor, not per
batch), an actor pool the size of the CPU budget, one mirkit thread per actor, and a
Parquet dataset with one row per file: path, scores (50 floats), top_tags, embedding
(200 floats) and error ("" when the file was fine; a bad file does not stop the job).
Nothing here is specific to mirkit but the class passed to `map_batches`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

AUDIO = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".opus"}


def audio_paths(folder: str) -> list[str]:
    """Every audio file under `folder`, sorted."""
    return sorted(
        str(p) for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO
    )


def run(folder: str, out: str, cpus: int = 2, model: str = "musicnn-mtt", batch_size: int = 4) -> str:
    """Runs the pipeline on a local Ray (started here if none is running); returns `out`."""
    import ray

    import mirkit

    if not ray.is_initialized():
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    paths = audio_paths(folder)
    if not paths:
        raise SystemExit(f"no audio files under {folder}")
    ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(
        mirkit.Tagger,
        fn_constructor_kwargs={"model": model, "embed": "penultimate", "threads": 1},
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=cpus,  # an actor pool: `cpus` taggers, each loaded once
        num_cpus=1,
    )
    ds.write_parquet(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--model", default="musicnn-mtt")
    a = ap.parse_args(argv)
    run(a.folder, a.out, a.cpus, a.model)
    import pyarrow.parquet as pq

    t = pq.read_table(a.out, columns=["path", "top_tags", "error"])
    for row in t.to_pylist():
        print(f"{Path(row['path']).name:50s} {row['top_tags'] or row['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
