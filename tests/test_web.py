"""The web demo as a user reaches it: the server started on 127.0.0.1 as ``python -m lavis_vislinginstruct.web``, then
driven by a real headless Chromium (Selenium) and by ``gradio_client``. The answers must equal the chat engine's on a
separately loaded model with the same flags. Model: the demo world's trained one when ``demo_output/model.yaml``
exists (the README screenshot is taken that way), else the tiny random one.

Set ``VLI_WEB_SCREENSHOT=path.png`` to keep the browser's screenshot (it is always written under the test's tmp dir).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the web extra is not installed (pip install -e '.[web]')")

from lavis_vislinginstruct.chat.engine import (  # noqa: E402
    COLUMNS, Conversation, chat_decoding, format_trace, new_columns,
)
from lavis_vislinginstruct.chat.launch import load_model  # noqa: E402
from lavis_vislinginstruct.datasets.datasets.base import load_image  # noqa: E402
from lavis_vislinginstruct.web import __main__ as web  # noqa: E402
from lavis_vislinginstruct.web.app import messages  # noqa: E402
from lavis_vislinginstruct.web.examples import example_images, example_questions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_SPEC = ROOT / "demo_output" / "model.yaml"
MAX_NEW = 8
MODEL_FLAGS = ["--model-spec", str(DEMO_SPEC)] if DEMO_SPEC.is_file() else ["--model-type", "tiny"]
FLAGS = [*MODEL_FLAGS, "--max-new-tokens", str(MAX_NEW), "--device", "cpu"]
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--window-size=1500,1300"]


# The server runs under a socket guard of its own: any connection beyond this machine is refused and logged.
GUARDED = """
import runpy, socket, sys
_connect = socket.socket.connect
def connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if self.family != socket.AF_UNIX and not str(host).startswith(("127.", "::1", "localhost")):
        print(f"BLOCKED connection to {address!r}", flush=True)
        raise OSError("the test allows loopback connections only")
    return _connect(self, address)
socket.socket.connect = connect
sys.argv[0] = "lavis_vislinginstruct.web"
runpy.run_module("lavis_vislinginstruct.web", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def inputs():
    """An example image of the page (the demo world's) and two world questions."""
    image = example_images(1, folder=str(ROOT / "demo_output" / "world" / "gqa" / "images"))[0]
    return image, example_questions()[:2]


@pytest.fixture(scope="module")
def server(inputs):
    """The demo server in its own process on a free loopback port; stopped (by its pid) after the module."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False")
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"vli_web_{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", GUARDED, "--port", str(port), *FLAGS],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 240
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.close()
                pytest.fail(f"the web demo did not start: {Path(log.name).read_text()[-3000:]}")
            time.sleep(1)
    yield url, Path(log.name)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def expected(inputs):
    """The two turns in every column through the chat engine of a separately loaded model."""
    image, questions = inputs
    engine = load_model(web.parse_args(FLAGS)).engine
    columns = new_columns(load_image(image), "example")
    for q in questions:
        list(engine.compare(columns, q.strip(), chat_decoding(max_new_tokens=MAX_NEW)))
    return columns


def text_of(message) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return content


def test_gradio_client_two_turns(server, inputs, expected):
    from gradio_client import Client, handle_file

    server, _ = server
    image, questions = inputs
    client = Client(server, verbose=False)
    for turn, question in enumerate(questions, start=1):
        job = client.submit(handle_file(image), question, 0.0, 0.9, MAX_NEW, 1, api_name="/chat")
        *chats, panel, status, download = job.result(timeout=300)
        outputs = job.outputs()
        for key, chat in zip(COLUMNS, chats):
            want = messages(Conversation(expected[key].image, "", expected[key].turns[:turn]))
            assert [(m["role"], text_of(m)) for m in chat] == [(m["role"], text_of(m)) for m in want], key
        assert status == "done"
        for i in range(1, turn + 1):
            assert f"**Turn {i}**" in panel
            assert format_trace(expected["ema_aio"].turns[i - 1].trace) in panel
        saved = json.loads(Path(download).read_text())
        assert [t["answer"] for t in saved["ema_aio"]["turns"]] == [t.answer for t in expected["ema_aio"].turns[:turn]]
        assert saved["vanilla"]["row"] == "vanilla" and saved["ema_aio"]["aio"] == "full"
        # streamed: the page shows each column's answer while the later columns are still to come, and answers of
        # several words arrive in pieces
        assert any(len(o[0]) == 2 * turn and text_of(o[0][-1]) == text_of(chats[0][-1]) and len(o[2]) == 2 * turn - 2
                   for o in outputs[:-1])
        for k, chat in enumerate(chats):
            final = text_of(chat[-1])
            shown = [text_of(o[k][-1]) for o in outputs[:-1] if len(o[k]) == 2 * turn]
            if len(final.split()) >= 3:
                assert any(p and p != final and final.startswith(p) for p in shown), (key, final, shown)
    # regenerate: the last question again (greedy, so the same answers); clear: no turns left
    *chats, panel, status, _ = client.predict(handle_file(image), 0.0, 0.9, MAX_NEW, 1, api_name="/regenerate")
    for key, chat in zip(COLUMNS, chats):
        assert [text_of(m) for m in chat] == [text_of(m) for m in messages(expected[key])]
    assert status == "done" and "**Turn 2**" in panel and "**Turn 3**" not in panel
    *chats, panel, status, download = client.predict(api_name="/clear")
    assert chats == [[], [], []] and "**Turn" not in panel and download is None


def _chromium():
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver (.ci/run does)")
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    return webdriver, Options, Service


def alnum(text: str) -> str:
    """Letters and digits only: what the page shows of a text, whatever its rendering does to spaces and symbols."""
    return re.sub(r"\W|_", "", text)


def test_browser_two_turns(server, inputs, expected, tmp_path):
    webdriver, Options, Service = _chromium()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, _ = server
    image, questions = inputs
    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    os.environ["SE_AVOID_STATS"] = "true"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        wait = WebDriverWait(driver, 240, poll_frequency=0.5)
        driver.get(server)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#image input[type=file]"))
        upload.send_keys(image)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image img"))

        def bubbles(key, row):
            return driver.find_elements(By.CSS_SELECTOR, f"#chat-{key} .{row}-row .message-content")

        def panel() -> str:
            return driver.find_element(By.ID, "aio-panel").text

        for turn, question in enumerate(questions, start=1):
            box = driver.find_element(By.CSS_SELECTOR, "#message textarea")
            driver.execute_script(  # the question has a newline, which typed into a one-line box would submit
                "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
                box, question)
            driver.find_element(By.ID, "send").click()
            wait.until(lambda d: all(len(bubbles(k, "bot")) == turn for k in COLUMNS)
                       and f"Turn {turn}" in panel() and d.find_element(By.ID, "status").text.strip() == "done")
            for key in COLUMNS:
                shown = [alnum(b.text) for b in bubbles(key, "bot")]
                want = [alnum(text_of(m)) for m in messages(expected[key]) if m["role"] == "assistant"][:turn]
                assert shown == want, key
                assert [alnum(b.text) for b in bubbles(key, "user")] == [alnum(q) for q in questions[:turn]]
            text = panel()
            lines = [line.strip() for line in text.splitlines()]
            for label in ("initial:", "rewritten:", "comparison prompt:", "optimized:", "used:"):
                assert sum(line.startswith(label) for line in lines) == turn, label
            assert sum("(IAS " in line for line in lines) >= 2 * turn  # both IAS of every turn
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1500, min(height + 40, 4000))
        shot = tmp_path / "web_demo.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
        if os.environ.get("VLI_WEB_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["VLI_WEB_SCREENSHOT"])
    finally:
        driver.quit()


def test_server_opened_no_outside_connection(server):
    """Run last: after the page was served, used and downloaded from, the server never connected beyond 127.0.0.1."""
    _, log = server
    text = log.read_text()
    assert "VisLingInstruct web demo on http://127.0.0.1:" in text
    assert "BLOCKED" not in text, text[-2000:]
