"""Cost of the gateway's metric updates per request (the six a finished request makes).

Run against two source trees to compare, e.g. the hand-written exposition before issue 12
and prometheus_client after; set PROMETHEUS_MULTIPROC_DIR to an empty directory to time
the multiprocess mode ``serve --workers N`` uses.

    python bench/metrics_overhead.py [SRC_DIR]
"""

from __future__ import annotations

import sys
import timeit

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])

from calibroute.gateway.metrics import GatewayMetrics  # noqa: E402

m = GatewayMetrics()


def one_request() -> None:
    m.requests.inc("auto", "SIMPLE", "small", "ok")
    m.latency.observe(0.012, "auto", "SIMPLE", "small")
    m.tokens.inc("prompt", "auto", "SIMPLE", "small", value=30)
    m.tokens.inc("completion", "auto", "SIMPLE", "small", value=60)
    m.tokens.inc("reasoning", "auto", "SIMPLE", "small", value=0)
    m.cost.inc("auto", "SIMPLE", "small", value=0.0001)


if __name__ == "__main__":
    n = 200_000
    best = min(timeit.repeat(one_request, number=n, repeat=5)) / n
    print(f"{best * 1e6:.2f} us per request (6 metric updates), best of 5 x {n:,}")
