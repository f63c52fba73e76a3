"""The container image's recipe: multi-stage, pinned, slim, non-root, offline install."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_dockerfile_shape() -> None:
    """Two stages on a slim base; wheels built once and installed without an index."""
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(froms) == 2
    assert all("slim" in f for f in froms)
    assert "--no-index --find-links /wheels" in text
    assert re.search(r"^USER 10001$", text, flags=re.M)
    assert 'ENTRYPOINT ["oomwatch"]' in text


def test_requirements_are_pinned_and_cover_the_runtime() -> None:
    """Every line pins an exact version, and every core dependency is there."""
    lines = [
        ln
        for ln in (ROOT / "packaging" / "requirements.txt").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^\s]*", ln) for ln in lines), lines
    names = {ln.split("==")[0].lower().replace("_", "-") for ln in lines}
    for dep in (
        "httpx",
        "psutil",
        "pydantic-settings",
        "slack-sdk",
        "watchfiles",
        "prometheus-client",
        "pyyaml",
        "jinja2",
        "rich",
        "lightkube",
    ):
        assert dep in names, dep
