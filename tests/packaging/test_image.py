"""The container image's recipe: multi-stage, pinned, slim, non-root, offline install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_dockerfile_shape() -> None:
    """Two stages on a slim base; wheels installed offline; the runtime stage only copies."""
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(froms) == 2
    assert all("slim" in f for f in froms)
    assert "--no-index --find-links /wheels" in text
    runtime = text.split("\nFROM ")[-1]
    assert "apt-get" not in runtime
    assert "/wheels" not in runtime
    assert "pip " not in runtime
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
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["kubernetes"]]
    for dep in wanted:
        name = re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower().replace("_", "-")
        assert name in names, f"{name} is a dependency but not pinned for the image"
