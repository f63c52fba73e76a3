"""Receivers' HTTP clients: what they hold in memory, and that they still send."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from oomwatch.notify.http import tls_for


def test_plain_http_loads_no_ca_bundle_and_https_clients_share_one_context() -> None:
    """A CA bundle costs 0.7 MB a context: plain HTTP needs none, TLS receivers share one."""
    plain = tls_for("http://alertmanager:9093")
    assert plain is tls_for("HTTP://127.0.0.1:8080/hook")
    assert plain.cert_store_stats()["x509_ca"] == 0
    shared = tls_for("https://hooks.slack.com/x")
    assert shared is tls_for("https://events.pagerduty.com/v2/enqueue") is tls_for(None)
    assert shared.cert_store_stats()["x509_ca"] > 0  # it verifies servers
    assert shared.check_hostname


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("trio", "h2")),
    reason="trio and h2 are not installed here, so httpcore would not load them anyway",
)
def test_the_agent_keeps_installed_but_unused_packages_out_and_still_posts() -> None:
    """httpcore loads trio and h2 when installed; the agent's process does not, and still posts."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from oomwatch.cli.agent import keep_unused_out
        if sys.argv[1] == "agent":
            keep_unused_out()
        from oomwatch.notify.http import client
        from tests.servers import Recorder

        async def main():
            hook = Recorder(keep_alive=True).start()
            c = client(url=hook.url)
            r = await c.post(hook.url + "/hook", content=b"{}")
            await c.aclose()
            hook.stop()
            loaded = sorted(m for m in ("trio", "h2") if sys.modules.get(m))
            print(r.status_code, len(hook.received), *loaded)

        asyncio.run(main())
        """
    )

    def run(mode: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", script, mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.split()

    assert run("plain") == ["200", "1", "h2", "trio"]  # what httpcore does by itself
    assert run("agent") == ["200", "1"]
