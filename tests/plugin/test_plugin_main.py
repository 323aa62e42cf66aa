"""``barq-plugin`` as a process: usage outside lightningd, JSON-RPC on real stdin/stdout inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

MAIN = [sys.executable, "-c", "from barq.plugin import main; main()"]


def test_usage_outside_lightningd() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNINGD_PLUGIN"}
    out = subprocess.run(MAIN, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "barqpay" in out.stdout and "barq-handle-pay" in out.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "barq-plugin"
    if not script.exists():
        pytest.skip(f"{script} not installed (pip install -e .)")
    assert os.access(script, os.X_OK)


class _Proc:
    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "LIGHTNINGD_PLUGIN": "1"}
        self.p = subprocess.Popen(
            MAIN,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp,
        )
        self.msgs: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        buf = b""
        while chunk := self.p.stdout.read1(65536):
            buf += chunk
            *done, buf = buf.split(b"\n\n")
            with self.lock:
                self.msgs += [json.loads(m) for m in done if m.strip()]

    def call(self, method: str, params: Any, rid: int, timeout: float = 30) -> dict[str, Any]:
        assert self.p.stdin is not None
        self.p.stdin.write(
            json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
            + b"\n\n"
        )
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for m in self.msgs:
                    if m.get("id") == rid and ("result" in m or "error" in m):
                        return m
            time.sleep(0.01)
        raise TimeoutError(f"no answer to {method}")


def test_plugin_process_speaks_json_rpc_and_survives_missing_lightningd(tmp_path: Path) -> None:
    proc = _Proc(tmp_path)
    try:
        manifest = proc.call("getmanifest", {}, 1)["result"]
        assert "barqpay" in {m["name"] for m in manifest["rpcmethods"]}
        init = proc.call(
            "init",
            {
                "options": {},
                "configuration": {
                    "lightning-dir": str(tmp_path),
                    "rpc-file": "lightning-rpc",
                    "startup": True,
                    "network": "regtest",
                },
            },
            2,
        )
        assert init["result"] is None
        for rid in range(3, 300):  # the engine fails to start: there is no lightningd
            st = proc.call("barqstatus", {}, rid)["result"]
            if st["engine"]["state"] != "starting":
                break
            time.sleep(0.05)
        assert st["engine"]["state"] == "failed" and "lightning-rpc" in st["engine"]["error"]
        assert st["store"]["state"] == "open"
        err = proc.call("barqpay", {"invstring": "lnbcrt1xyz"}, 1000)["error"]
        assert err["code"] == -1 and "lightning-rpc" in err["message"]
        assert proc.call("barqstrategies", {}, 1001)["result"]["strategies"]
        # pyln turns prints into log notifications: nothing but JSON on stdout
        with proc.lock:
            assert any(m.get("method") == "log" for m in proc.msgs)
    finally:
        assert proc.p.stdin is not None
        proc.p.stdin.close()  # what lightningd does when it stops
        proc.p.wait(timeout=30)
    assert proc.p.returncode == 0, proc.p.stderr.read() if proc.p.stderr else ""
    assert (tmp_path / "barq.sqlite3").exists()
