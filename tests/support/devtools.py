# SPDX-License-Identifier: MIT
"""A page rendered by headless Chromium and read once it says it is drawn: the DevTools protocol
over --remote-debugging-pipe (JSON messages ended by NUL on file descriptors 3 and 4), standard
library only. Chromium's --dump-dom and --screenshot take the page when a time budget runs out,
which a loaded machine can reach before the page has painted; this waits for the page's own
signal instead (an attribute it sets once drawn), then asks for the DOM and a fresh screenshot.

    dom, png = render("/tmp/page.html", drawn="document.documentElement.dataset.drawn")
"""
import base64
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time

CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--remote-debugging-pipe"]
WIDTH, HEIGHT = 1200, 800


class Browser:
    """One headless Chromium, driven through its pipe; commands wait for their own answer."""

    def __init__(self, profile):
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()

        def onto_3_and_4():  # in the child: Chromium reads fd 3 and writes fd 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_read, answers_write)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)
        self.process = subprocess.Popen([*CHROMIUM, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        preexec_fn=onto_3_and_4, pass_fds=(3, 4))
        os.close(commands_read)
        os.close(answers_write)
        self._next_id, self._buffer = 0, b""

    def send(self, method, params=None, session=None, timeout=60):
        """The result of one command; an AssertionError with Chromium's error otherwise."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                assert left > 0 and select.select([self._answers], [], [], left)[0], \
                    f"Chromium did not answer {method} in {timeout} s"
                chunk = os.read(self._answers, 1 << 20)
                assert chunk, f"Chromium exited: {self.process.stderr.read()[-800:]!r}"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:  # events and others' answers are skipped
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer["result"]

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except AssertionError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()
        os.close(self._commands)
        os.close(self._answers)


def wait_until(browser, session, expression, timeout):
    """Asks the page every 20 ms until `expression` is true (the page loads meanwhile: the old
    document's answers are false or errors)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                            session)["result"].get("value") is True:
                return
        except AssertionError as error:
            if "Chromium" in str(error):  # it exited or stopped answering: no use waiting
                raise
        time.sleep(0.02)
    raise AssertionError(f"the page never made {expression} true in {timeout} s")


def render(page, drawn, timeout=60):
    """(the DOM as HTML, a PNG screenshot of WIDTHxHEIGHT) of file `page`, taken once the
    JavaScript expression `drawn` is true in it, and a frame later (painted)."""
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(profile)
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget",
                                   {"targetId": target, "flatten": True})["sessionId"]
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1,
                          "mobile": False}, session)
            browser.send("Page.navigate", {"url": f"file://{page}"}, session)
            wait_until(browser, session, f"location.protocol === 'file:' && !!({drawn})", timeout)
            # Then a frame painted after it.
            browser.send("Runtime.evaluate", {
                "expression": "new Promise(function (done) { requestAnimationFrame(function () {"
                              " requestAnimationFrame(function () { done(true); }); }); })",
                "awaitPromise": True, "returnByValue": True}, session, timeout=timeout)
            dom = browser.send("Runtime.evaluate", {
                "expression": "document.documentElement.outerHTML", "returnByValue": True},
                session)["result"]["value"]
            shot = browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        finally:
            browser.close()
    return dom, base64.b64decode(shot)
