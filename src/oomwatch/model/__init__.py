"""Every record that crosses a module boundary. Nothing here imports the rest of oomwatch.

Names load on first use: the parser needs only the kernel records, and a command
that parses a log starts faster without the incident model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oomwatch.model.facts import (
        EVENT_FACTS as EVENT_FACTS,
    )
    from oomwatch.model.facts import (
        BacklogFacts as BacklogFacts,
    )
    from oomwatch.model.facts import (
        ConditionFacts as ConditionFacts,
    )
    from oomwatch.model.facts import (
        Facts as Facts,
    )
    from oomwatch.model.facts import (
        FollowUp as FollowUp,
    )
    from oomwatch.model.facts import (
        KillFacts as KillFacts,
    )
    from oomwatch.model.facts import (
        LogGapFacts as LogGapFacts,
    )
    from oomwatch.model.facts import (
        UnseenKillFacts as UnseenKillFacts,
    )
    from oomwatch.model.incident import (
        PAYLOAD_VERSION as PAYLOAD_VERSION,
    )
    from oomwatch.model.incident import (
        Category as Category,
    )
    from oomwatch.model.incident import (
        Incident as Incident,
    )
    from oomwatch.model.kernel import (
        UNLIMITED_KB as UNLIMITED_KB,
    )
    from oomwatch.model.kernel import (
        Consumer as Consumer,
    )
    from oomwatch.model.kernel import (
        Container as Container,
    )
    from oomwatch.model.kernel import (
        KernelLine as KernelLine,
    )
    from oomwatch.model.kernel import (
        Killer as Killer,
    )
    from oomwatch.model.kernel import (
        LineFormat as LineFormat,
    )
    from oomwatch.model.kernel import (
        MemcgUsage as MemcgUsage,
    )
    from oomwatch.model.kernel import (
        OomKill as OomKill,
    )
    from oomwatch.model.kernel import (
        Scope as Scope,
    )
    from oomwatch.model.kernel import (
        TaskRow as TaskRow,
    )
    from oomwatch.model.kernel import (
        Trigger as Trigger,
    )
    from oomwatch.model.kernel import (
        Victim as Victim,
    )
    from oomwatch.model.kernel import (
        flat as flat,
    )
    from oomwatch.model.kernel import (
        where as where,
    )
    from oomwatch.model.memory import (
        CgroupMem as CgroupMem,
    )
    from oomwatch.model.memory import (
        ConditionChange as ConditionChange,
    )
    from oomwatch.model.memory import (
        ProcInfo as ProcInfo,
    )
    from oomwatch.model.memory import (
        Severity as Severity,
    )
    from oomwatch.model.memory import (
        Snapshot as Snapshot,
    )
    from oomwatch.model.memory import (
        Status as Status,
    )
    from oomwatch.model.parts import (
        Explanation as Explanation,
    )
    from oomwatch.model.parts import (
        MemoryNow as MemoryNow,
    )
    from oomwatch.model.parts import (
        NodeInfo as NodeInfo,
    )
    from oomwatch.model.parts import (
        PodRef as PodRef,
    )
    from oomwatch.model.parts import (
        ProcessDetails as ProcessDetails,
    )
    from oomwatch.model.parts import (
        TopProcess as TopProcess,
    )
    from oomwatch.model.parts import (
        fingerprint as fingerprint,
    )

_HOME = {
    "EVENT_FACTS": "facts",
    "ConditionFacts": "facts",
    "Facts": "facts",
    "FollowUp": "facts",
    "KillFacts": "facts",
    "LogGapFacts": "facts",
    "UnseenKillFacts": "facts",
    "BacklogFacts": "facts",
    "PAYLOAD_VERSION": "incident",
    "Category": "incident",
    "Incident": "incident",
    "UNLIMITED_KB": "kernel",
    "Consumer": "kernel",
    "Container": "kernel",
    "KernelLine": "kernel",
    "Killer": "kernel",
    "LineFormat": "kernel",
    "MemcgUsage": "kernel",
    "OomKill": "kernel",
    "Scope": "kernel",
    "TaskRow": "kernel",
    "Trigger": "kernel",
    "Victim": "kernel",
    "flat": "kernel",
    "where": "kernel",
    "CgroupMem": "memory",
    "ConditionChange": "memory",
    "ProcInfo": "memory",
    "Severity": "memory",
    "Snapshot": "memory",
    "Status": "memory",
    "Explanation": "parts",
    "MemoryNow": "parts",
    "NodeInfo": "parts",
    "PodRef": "parts",
    "ProcessDetails": "parts",
    "TopProcess": "parts",
    "fingerprint": "parts",
}


def __getattr__(name: str) -> Any:
    """Load a record's module the first time one of its names is used."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'oomwatch.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"oomwatch.model.{home}"), name)
    globals()[name] = value
    return value
