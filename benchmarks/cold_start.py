"""Cold start of the receiver Lambda beside its floor: boto3 and the same clients, nothing else.

Each run is a fresh interpreter, so nothing is cached in memory; timing starts inside the
process (interpreter start-up is the same on both sides and left out). Runs alternate
between the two sides and the median is reported. No AWS call is made: the endpoint is a
closed loopback port and the credentials are dummies; clients are created, never called.

    .venv/bin/python benchmarks/cold_start.py [--runs 9]

Prints a markdown section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, update_section

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.3

# The receiver's whole initialisation: import, settings, clients, providers. The providers are
# built from the secret's JSON exactly as after a GetSecretValue (the fetch is the network
# call left out).
RECEIVER = """
import time
start = time.perf_counter()
import os
from payhook.runtimes.aws_lambda import receiver
from payhook.backends.aws.secrets import provider_configs
from payhook.providers import build_providers
runtime = receiver.receiver()
providers = build_providers(provider_configs(os.environ["BENCH_PROVIDERS_SECRET"]))
assert runtime.store.dynamodb is not None and "stripe" in providers
print(time.perf_counter() - start)
"""

FLOOR = """
import time
start = time.perf_counter()
import boto3
from botocore.config import Config
config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
session = boto3.session.Session()
clients = [session.client(name, config=config) for name in ("secretsmanager", "dynamodb", "sqs")]
print(time.perf_counter() - start)
"""

SECRET = {
    "providers": {"stripe": {"secrets": ["whsec_cold_start_benchmark"], "tolerance_seconds": 300}}
}


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PAYHOOK_"))}
    env.update(
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # closed port: any call would fail, none is made
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="eu-west-1",
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_EC2_METADATA_DISABLED="true",
        PAYHOOK_WEBHOOKS_TABLE="payhook-webhooks",
        PAYHOOK_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/payhook-processing",
        PAYHOOK_PROVIDERS_SECRET_ARN=(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:payhook/providers-AbCdEf"
        ),
        PAYHOOK_ENVIRONMENT="bench",
        POWERTOOLS_SERVICE_NAME="payhook",
        BENCH_PROVIDERS_SECRET=json.dumps(SECRET),
        PYTHONPATH=str(ROOT / "src"),
    )
    return env


def run(code: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per side (>= 7)")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    runs = max(args.runs, 7)
    env = environment()
    run(RECEIVER, env), run(FLOOR, env)  # warm-up: byte-compile, fill the page cache
    receiver_ms: list[float] = []
    floor_ms: list[float] = []
    for _ in range(runs):
        receiver_ms.append(run(RECEIVER, env))
        floor_ms.append(run(FLOOR, env))
    receiver_median, floor_median = statistics.median(receiver_ms), statistics.median(floor_ms)
    ratio = receiver_median / floor_median
    # Each pair ran back to back, so its ratio is less exposed to load drifting over the run.
    pair_ratio = statistics.median(r / f for r, f in zip(receiver_ms, floor_ms, strict=True))
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    report = f"""## Receiver Lambda cold start (`benchmarks/cold_start.py`)

Machine: {machine()}; median of {runs} fresh interpreters per side, alternating.

| what | median ms | min ms | max ms |
|---|---:|---:|---:|
| floor: `import boto3` + secretsmanager, dynamodb, sqs clients | {floor_median:.1f} \
| {min(floor_ms):.1f} | {max(floor_ms):.1f} |
| receiver: import + settings + the same clients + providers | {receiver_median:.1f} \
| {min(receiver_ms):.1f} | {max(receiver_ms):.1f} |

Ratio receiver / floor: **{ratio:.2f}x** of the medians ({verdict} the {TARGET_RATIO}x \
target); median of the back-to-back pair ratios: {pair_ratio:.2f}x; payhook's own share: \
{receiver_median - floor_median:.1f} ms. Interpreter start-up and the first GetSecretValue \
call are excluded from both sides."""
    print(report)
    if not args.no_write:
        update_section("cold_start", report)


if __name__ == "__main__":
    main()
