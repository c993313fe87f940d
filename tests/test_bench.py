"""Smoke test of the benchmark (bench/): a tiny run produces every table row and every reply check passes.

No timing is asserted: the figures of a quick run mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import Settings, list_providers

pytestmark = pytest.mark.bench  # not in the default run: `make bench-smoke` (CI runs it as its own step)

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("openai", "anthropic", "ollama", "tools")  # tools: OpenAI SSE with two parallel tool calls


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--no-peers", "--out-dir", str(out),
                           "--max-seconds", "120"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result] = out.glob("bench-*-quick.json")
    assert result.with_suffix(".md").is_file()
    data = json.loads(result.read_text(encoding="utf-8"))
    data["stdout"] = proc.stdout
    return data


def test_reply_checks_pass(quick_run: dict) -> None:
    assert quick_run["checks_ok"], quick_run["failures"]
    assert quick_run["failures"] == []


def test_every_table_row(quick_run: dict) -> None:
    S = quick_run["summary"]
    assert {"(bare python)", "engine: import + list", "engine: + compile all", "httpx"} <= set(S["import"])
    assert set(quick_run["micro"]) == set(list_providers(Settings()))
    sections = ["seq", "mock_seq", *(f"stream_{f}" for f in FORMATS), *(f"mock_stream_{f}" for f in FORMATS),
                *(f"conc_{level}" for level in quick_run["args"]["conc_levels"]), "hold"]
    for section in sections:
        assert {"httpx", "engine"} <= set(S[section]), section
    assert S["hold"]["engine"]["errors"] == 0


def test_targets_reported(quick_run: dict) -> None:
    targets = {t["target"]: t["status"] for t in quick_run["targets"]}
    assert len(targets) == 14
    for name, status in targets.items():
        assert status in ("met", "missed") or status.startswith("n/a"), (name, status)
    # Without peers, only the comparisons with them have no figure.
    assert sum(s.startswith("n/a") for s in targets.values()) == 3


def test_report_printed(quick_run: dict) -> None:
    text = quick_run["report"]
    for title in ("## Import", "## Render / extract", "## Non-streamed calls", "## In-process",
                  "## Streamed call over loopback, anthropic", "## Streamed call over loopback, tools",
                  "## Concurrency", "concurrent streams held open",
                  "## Targets"):
        assert title in text
    assert text in quick_run["stdout"]
