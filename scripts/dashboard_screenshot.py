"""Make docs/dashboard.png: the dashboard of a sample tag, in Debian's headless Chromium.

    .venv/bin/python scripts/dashboard_screenshot.py [--out docs/dashboard.png]

Starts its own redis-server on a free port, fills a tag of 400 jobs through
jobledger's own writes (tests/experiment.py), with stderr files for the failed ones,
runs `jobledger dashboard` against it and photographs the page with one failed job
open and the trend of `reward` drawn.  Needs the web and test extras and Debian's
chromium and chromium-driver (./scripts/test.sh installs them).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import redis  # noqa: E402

from browser import headless_chromium  # noqa: E402
from experiment import build  # noqa: E402
from jobledger.ledger import isoformat  # noqa: E402

ERRORS = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "ValueError: loss is nan at step 1200",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill(client: redis.Redis, tag: str, logs: Path) -> None:
    ids = build(client, tag, 400, results_per_job=4)
    for i, job_id in enumerate(ids):
        state = client.hget(f"jobledger:{tag}:job:{job_id}", "state")
        if state in ("FAILED", "TIMEOUT"):
            err = logs / f"{tag}-{job_id}.err"
            line = (
                ERRORS[i % 2]
                if state == "FAILED"
                else "slurmstepd: error: *** JOB CANCELLED DUE TO TIME LIMIT ***"
            )
            err.write_text(f"epoch 1 loss 0.93\nepoch 2 loss 0.71\n{line}\n")
            client.hset(
                f"jobledger:{tag}:job:{job_id}",
                mapping={"stderr": str(err), "stderr_last": line, "stdout": str(logs / "none.out")},
            )
    now = isoformat(datetime.now(timezone.utc))
    client.hset(
        f"jobledger:{tag}:tracker",
        mapping={"mode": "ok", "last_pass_at": now, "checked": "40", "moved": "3"},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    args = parser.parse_args()
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = subprocess.Popen(
            [
                "/usr/bin/redis-server",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        web = None
        try:
            client = redis.Redis(port=port, decode_responses=True)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            fill(client, "rlmol_sweep", Path(tmp))
            env = {**os.environ, "JOBLEDGER_URL": f"redis://127.0.0.1:{port}/0", "HOME": tmp}
            web_port = free_port()
            web = subprocess.Popen(
                [sys.executable, "-m", "jobledger", "dashboard", "--port", str(web_port)],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            url = web.stderr.readline().split()[2]  # type: ignore[union-attr]
            browser = headless_chromium(1280, 1500)
            try:
                browser.get(url)
                time.sleep(1.5)
                browser.find_element(By.ID, "count-FAILED").click()
                time.sleep(1)
                row = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr.job")[1]
                browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
                row.click()
                time.sleep(1)
                browser.find_element(By.ID, "trend-key").send_keys("reward")
                browser.find_element(By.ID, "trend-go").click()
                time.sleep(1)
                browser.execute_script("window.scrollTo(0, 0)")
                time.sleep(0.3)
                browser.save_screenshot(args.out)
            finally:
                browser.quit()
        finally:
            if web is not None:
                web.terminate()
                web.wait()
            server.terminate()
            server.wait()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
