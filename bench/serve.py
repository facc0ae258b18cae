"""What `unpaired serve` sustains on this CPU: requests per second and p50/p95 latency of translating one 256 px
upload (POST /api/translate, answered with the PNG) with 1, 4 and 16 concurrent clients on localhost, and the
server's memory after 1,000 uploads.

The server is the real command, `unpaired serve --checkpoint RUN --host 127.0.0.1` in its own process (its
default: one translation at a time, off the request loop), so the clients, plain threads of this script with
``http.client``, do not share its interpreter. The model is a method's shipped 256 px configuration trained for one
step on random images: speed does not depend on the weights. Each concurrency level sends at most ``--requests``
requests and stops after ``--seconds``, after ``--warmup`` untimed ones; the memory part sends ``--uploads``
uploads one after another and reads the server's resident memory (VmRSS) after the warm-up and at the end.

    python bench/serve.py [--method cyclegan] [--requests 200] [--seconds 120] [--uploads 1000]

Writes bench/results/serve.json and serve.md.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    CONFIGS_256,
    QUIET,
    add_quick_option,
    config_256,
    make_folder,
    provenance,
    report_header,
    resolve_output_folders,
    write_report,
)

CLIENTS = (1, 4, 16)
BOUNDARY = "unpairedbenchboundary"


def train_one_step(method: str, size: int, quick: bool, work: Path) -> Path:
    """A run of ``method``'s 256 px configuration (``size`` px) trained for one step on random images."""
    from unpaired.training.trainer import Trainer

    data = make_folder(work / "data", size, count=2)  # no test split: its warning says so, and nothing is scored
    cfg = config_256(method, size, quick, [f"data.source={data}", "data.load_size=0", "train.max_steps=1",
                                           "train.batch_size=1", "train.num_samples=1", *QUIET])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*has no test[AB]/ folder")
        return Trainer(cfg, work / "run").fit().checkpoint


def upload_body(size: int) -> bytes:
    """The multipart form of one upload: a ``size`` px RGB PNG of smooth colour gradients."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    image = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1),
                      np.full((size, size), 128, np.float32)], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n0\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()
    return head + buffer.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()


def translate_once(port: int, body: bytes) -> float:
    """Seconds for one POST /api/translate (fails loudly on anything but a PNG answer)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("POST", "/api/translate", body,
                           {"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200 or not answer.startswith(b"\x89PNG"):
        raise RuntimeError(f"the server answered {response.status}: {answer[-200:]!r}")
    return time.perf_counter() - started


def load_level(port: int, body: bytes, clients: int, requests: int, seconds: float) -> dict:
    """``clients`` threads sending uploads back to back until ``requests`` were sent or ``seconds`` passed."""
    latencies: list[float] = []
    lock = threading.Lock()
    sent = 0
    deadline = time.perf_counter() + seconds

    def client() -> None:
        nonlocal sent
        while True:
            with lock:
                if sent >= requests or time.perf_counter() > deadline:
                    return
                sent += 1
            took = translate_once(port, body)
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"clients": clients, "requests": len(ordered), "seconds": round(wall, 2),
            "requests_per_second": round(len(ordered) / wall, 2),
            "p50_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)}


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(checkpoint: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "unpaired.cli", "serve", "--checkpoint", str(checkpoint),
                               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server did not start: {server.stderr.read().decode()[-500:]}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(args: argparse.Namespace, work: Path) -> dict:
    checkpoint = train_one_step(args.method, args.size, args.quick, work)
    body = upload_body(args.size)
    port = free_port()
    server = start_server(checkpoint, port)
    try:
        for _ in range(args.warmup):
            translate_once(port, body)
        levels = [load_level(port, body, clients, args.requests, args.seconds) for clients in CLIENTS]
        before = resident_mib(server.pid)
        from tqdm import tqdm

        for _ in tqdm(range(args.uploads), desc="uploads", unit="req"):
            translate_once(port, body)
        after = resident_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    return {"levels": levels, "memory": {"uploads": args.uploads, "rss_mib_before": before, "rss_mib_after": after,
                                         "growth_mib": round(after - before, 1)}}


def markdown(r: dict) -> str:
    m = r["memory"]
    lines = [*report_header("`unpaired serve`: throughput, latency and memory", r),
              f"Model: {r['method']} ({r['config']}), {r['size']} x {r['size']} uploads (PNG), one translation at a "
              f"time in the server (its default `--workers 1`), OMP_NUM_THREADS={r['server_threads']}; server and "
              "clients on the same machine.", "",
              "| concurrent clients | requests | requests/s | p50 latency (ms) | p95 latency (ms) |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {v['clients']} | {v['requests']} | {v['requests_per_second']} | {v['p50_ms']} | {v['p95_ms']} |"
              for v in r["levels"]]
    lines += ["", f"Server memory (resident): {m['rss_mib_before']} MiB after the warm-up and the load levels, "
                  f"{m['rss_mib_after']} MiB after {m['uploads']} more uploads ({m['growth_mib']:+} MiB)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=sorted(CONFIGS_256), default="cyclegan")
    parser.add_argument("--requests", type=int, default=200, help="most requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=120, help="most seconds per concurrency level")
    parser.add_argument("--uploads", type=int, default=1000, help="uploads before the second memory reading")
    parser.add_argument("--warmup", type=int, default=3, help="untimed uploads first")
    add_quick_option(parser, "a tiny 64 px network, 8 requests per level, 20 uploads")
    args = parser.parse_args(argv)
    args.size = 256
    if args.quick:
        args.size, args.requests, args.seconds, args.uploads, args.warmup = 64, 8, 30, 20, 1
    resolve_output_folders(parser, args, "serve")
    record = {**provenance("serve.py", argv), "server_threads": os.environ.get("OMP_NUM_THREADS", "torch's default"),
              "quick": args.quick, "method": args.method,
              "config": CONFIGS_256[args.method] + (" (quick: tiny)" if args.quick else ""), "size": args.size,
              "limits": {"requests": args.requests, "seconds": args.seconds}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as work:
        record.update(measure(args, Path(work)))
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    write_report(args.out, "serve", record, markdown(record))


if __name__ == "__main__":
    main()
