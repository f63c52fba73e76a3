"""No secret reaches the agent's log or its database, even when a receiver echoes them back.

Root only (a real OOM kill in a 32 MiB memory cgroup, /dev/kmsg).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agentproc import AgentProcess
from tests.conftest import real_kernel_reason
from tests.servers import Received, Recorder
from tests.test_agent import agents, oom_kill

pytestmark = [
    pytest.mark.skipif(real_kernel_reason() is not None, reason=real_kernel_reason() or ""),
    pytest.mark.fault,
]
__all__ = ["agents"]  # the fixture
SECRETS = ("pw-secret-42", "SECRETPATH", "qtok-777", "hdr-secret-99", "hmac-secret-31")


def test_an_echoing_receiver_leaks_nothing(
    agents: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    """A 400 whose body repeats the URL and the Authorization header: the log shows neither."""

    def echo(req: Received) -> tuple[int, dict[str, str], bytes]:
        told = f"bad request to {req.path} with {req.headers.get('Authorization')}"
        return 400, {"Content-Type": "text/plain"}, told.encode()

    hook = Recorder(responder=echo).start()
    port = hook.url.rsplit(":", 1)[1]
    config = tmp_path / "receivers.yaml"
    config.write_text(
        "receivers:\n  - name: echo\n    webhook:\n"
        f"      url: 'http://user:pw-secret-42@127.0.0.1:{port}/hook/SECRETPATH?token=qtok-777'\n"
        "      headers: {Authorization: 'Bearer hdr-secret-99'}\n"
        "      hmac_secret: hmac-secret-31\n"
    )
    try:
        agent = agents(OOMWATCH_CONFIG=str(config)).start()
        pid = oom_kill("oomwatch-leak")
        agent.wait_log("failed for good")
        assert any(str(pid) in r.body.decode() for r in hook.received), "the kill was sent"
        assert "SECRETPATH" in hook.received[0].path, "the receiver did echo the secrets"
        assert agent.stop() == 0
    finally:
        hook.stop()
    log = agent.log.read_bytes()
    assert b"HTTP 400" in log
    stored = b"".join(p.read_bytes() for p in agent.state_dir.glob("oomwatch.db*"))
    for secret in SECRETS:
        assert secret.encode() not in log, secret
        assert secret.encode() not in stored, secret
