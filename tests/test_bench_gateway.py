"""Smoke test of the gateway benchmark (bench/gateway.py): a tiny run without LiteLLM produces every table row,
every reply check passes, and the target that compares with LiteLLM says n/a.

No timing is asserted: the figures of a quick run mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="genai serve needs the server extra")
pytestmark = pytest.mark.bench  # not in the default run: `make bench-smoke`

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench-gateway")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "bench", "gateway", "--quick", "--no-litellm", "--out-dir", str(out),
                           "--max-seconds", "120"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result] = out.glob("gateway-*-quick.json")
    assert result.with_suffix(".md").is_file()
    data = json.loads(result.read_text(encoding="utf-8"))
    data["stdout"] = proc.stdout
    return data


def test_reply_checks_pass(quick_run: dict) -> None:
    assert quick_run["checks_ok"], quick_run["failures"]


def test_every_table_row(quick_run: dict) -> None:
    S = quick_run["summary"]
    for mode in ("plain", "stream"):
        for level in ("1", "64"):
            assert set(S["latency"][mode][level]) == {"direct", "gateway"}, (mode, level)
            assert S["latency"][mode][level]["gateway"]["errors"] == 0
    assert set(S["chunks"]) == {"direct", "gateway"}
    assert set(S["rps"]) == {"direct", "gateway", "gateway-2w"}
    assert all(row["errors"] == 0 and row["rps"] > 0 for row in S["rps"].values())


def test_targets_reported(quick_run: dict) -> None:
    status = [t["status"] for t in quick_run["targets"]]
    assert len(status) == 3
    assert status[0] in ("met", "missed") and status[2] in ("met", "missed")
    assert status[1].startswith("n/a (LiteLLM's proxy left out")


def test_report_printed(quick_run: dict) -> None:
    text = quick_run["report"]
    for title in ("## Non-streamed latency", "## Streamed latency", "## Per-chunk stream cost",
                  "## Requests per second", "## Targets", "LiteLLM's proxy: **not measured**"):
        assert title in text
    assert text in quick_run["stdout"]
