"""The one-file install: dist/gatewayctl.pyz (built by packaging/build_pyz.py, as `make dist` does) runs
`--version`, `init`, `serve`, admin commands and a real openai-SDK request with a plain python3, no
virtual environment on PATH and a fresh home (its dependencies unpack there at the first run).

The build needs the package index (pip resolves the dependencies), so it is the one slow test here; a
dist/gatewayctl.pyz already built from this exact clean revision is reused."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.gateway import free_port

REPO = Path(__file__).resolve().parents[2]
PYZ = REPO / "dist" / "gatewayctl.pyz"
sys.path.insert(0, str(REPO / "packaging"))
from build_pyz import build, revision  # noqa: E402


def _plain_python() -> str:
    """A python3 outside any virtual environment, of the version the .pyz's compiled wheels were built for."""
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [shutil.which("python3", path="/usr/bin:/bin"), str(Path(sys.base_prefix) / "bin" / "python3")]
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.prefix != sys.base_prefix)"],
            capture_output=True,
            text=True,
        )
        if done.stdout.split() == [wanted, "False"]:
            return candidate
    pytest.skip(f"no python{wanted} outside a virtual environment to run the .pyz with")


def _built() -> Path:
    current = revision()
    if PYZ.is_file() and not current.endswith("-dirty") and current != "unknown":
        import zipfile

        with zipfile.ZipFile(PYZ) as archive:
            stamped = archive.read("site-packages/gatewayctl/REVISION").decode().strip()
        if stamped == current:
            return PYZ
    build(PYZ)
    return PYZ


def test_the_pyz_inits_serves_and_answers_an_openai_sdk_request_without_a_venv(tmp_path: Path) -> None:
    python, pyz = _plain_python(), _built()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [python, str(pyz), *args], capture_output=True, text=True, env={**env, **(extra or {})}, timeout=180
        )
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done

    assert run("--version").stdout.startswith("gatewayctl 0.1.0 (revision ")
    directory = tmp_path / "etc"
    init = json.loads(run("init", "--dir", str(directory), "--json").stdout)
    port = free_port()
    config = directory / "config.toml"
    config.write_text(config.read_text().replace("port = 8080", f"port = {port}", 1))
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([python, str(pyz), "serve", "--config", str(config)], stdout=log, stderr=log, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        admin = {"GATEWAY_URL": url, "GATEWAY_ADMIN_TOKEN": init["admin_token"]}
        run("projects", "create", "one-file", extra=admin)
        key = json.loads(run("keys", "create", "--project", "one-file", "--json", extra=admin).stdout)["key"]
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "from a pyz"}]
        )
        assert reply.choices[0].message.content == "Mock reply: from a pyz"
        assert "gpt-4o-mini" in run("models", "list", extra=admin).stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        log.close()
