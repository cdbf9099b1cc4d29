"""`make lab` in a real browser: JupyterLab on localhost with a token, Debian's headless Chromium driven by
Playwright opens chapter 00, runs every cell in the smoke profile, and sees the training progress bar (a
widget), its summary line and the final figure. A screenshot is saved in build/browser/ (at the top of
the course, for people to look at).

`make setup` installs Chromium (apt) and Playwright (requirements.txt); Playwright never downloads a
browser of its own here. Where either is missing the test fails under CI and is skipped elsewhere.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real jobs, notebooks or processes: make test, not make check

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "build" / "browser"
BROWSER_STEPS = 20  # enough for a bar, a validation and the figures; the notebook test runs the full chapter
RUN_ALL_LIMIT_S = 180  # chapter 00 takes well under a minute in smoke; a hang fails here, not in CI's limit


def _require_browser():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -r requirements.txt)")
    if missing:
        message = "browser test needs " + " and ".join(missing) + "; `make setup` installs both"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _smoke_copy(folder: Path) -> Path:
    """Chapter 00 as a learner opens it, with the parameters cell set to the smoke profile and a short run."""
    nb = json.loads((ROOT / "chapters" / "00_baseline.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    source = "".join(cell["source"])
    assert 'profile = "auto"' in source
    assert "max_steps = None" in source
    source = source.replace('profile = "auto"', 'profile = "smoke"', 1)
    cell["source"] = source.replace("max_steps = None", f"max_steps = {BROWSER_STEPS}", 1)
    path = folder / "00_baseline.ipynb"
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab on 127.0.0.1 with a random token, its state kept in tmp_path; stopped afterwards."""
    _require_browser()
    course = tmp_path / "course"
    course.mkdir()
    _smoke_copy(course)
    port, token = _free_port(), secrets.token_hex(16)
    # The notebook's kernel starts without a "Select Kernel" dialog, every cell stays in the page (JupyterLab
    # 4 otherwise detaches those scrolled out of view), and no news prompt covers the notebook.
    settings = tmp_path / "settings" / "@jupyterlab"
    for plugin, values in [
        ("notebook-extension/tracker", {"windowingMode": "none", "autoStartDefaultKernel": True}),
        ("apputils-extension/notification", {"fetchNews": "false"}),
    ]:
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    env = dict(
        os.environ,
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
    )
    env.pop("FASTTRAIN_PROGRESS", None)  # a learner's JupyterLab: the progress bar is a widget
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ServerApp.token={token}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={course}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI runs as root
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.perf_counter() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.perf_counter() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
            time.sleep(0.3)
    try:
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()


@pytest.mark.timeout(360)
def test_chapter_00_runs_in_jupyterlab_in_a_real_browser(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{base}/lab/tree/00_baseline.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            # The kernel has started and connected: the status bar names it and says Idle.
            page.wait_for_function(
                """() => {
                const bar = document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar');
                return bar && /Python 3.*Idle/.test(bar.innerText);
            }""",
                polling=500,
            )

            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel:text-is('Run All Cells')").click()

            # The job's progress bar (a tqdm widget) appears in the training cell while the job runs.
            page.wait_for_function(
                "document.querySelector('.jp-Notebook .widget-hprogress .progress-bar') !== null",
                polling=500,
                timeout=RUN_ALL_LIMIT_S * 1000,
            )
            # Done when every code cell shows its execution number and the kernel is idle again.
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                    const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
                    return idle && prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.innerText));
                }""",
                polling=500,
                timeout=RUN_ALL_LIMIT_S * 1000,
            )
            text = page.locator(".jp-Notebook").inner_text()
            assert "Traceback (most recent call last)" not in text
            full_bar = f"{BROWSER_STEPS}/{BROWSER_STEPS}"
            assert full_bar in text and "[launch] baseline: done" in text  # the full bar, then its summary
            assert "[fasttrain] step" not in text  # the job's log stays in its run folder

            images = page.locator(".jp-OutputArea-output img")
            assert images.count() >= 2  # the training curves and, last, the step-time histogram
            final = images.last
            final.scroll_into_view_if_needed()
            size = final.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
            assert size[0] and size[1] > 100 and size[2] > 100, size
            final.screenshot(path=str(SCREENSHOTS / "chapter00_final_figure.png"))
        finally:
            page.screenshot(path=str(SCREENSHOTS / "chapter00_jupyterlab.png"), full_page=True)
            browser.close()
