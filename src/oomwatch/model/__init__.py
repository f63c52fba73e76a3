"""Every record that crosses a module boundary. Nothing here imports the rest of oomwatch."""

from __future__ import annotations

from oomwatch.model.incident import (
    PAYLOAD_VERSION as PAYLOAD_VERSION,
)
from oomwatch.model.incident import (
    Category as Category,
)
from oomwatch.model.incident import (
    ConditionFacts as ConditionFacts,
)
from oomwatch.model.incident import (
    Explanation as Explanation,
)
from oomwatch.model.incident import (
    Facts as Facts,
)
from oomwatch.model.incident import (
    FollowUp as FollowUp,
)
from oomwatch.model.incident import (
    Incident as Incident,
)
from oomwatch.model.incident import (
    KillFacts as KillFacts,
)
from oomwatch.model.incident import (
    LogGapFacts as LogGapFacts,
)
from oomwatch.model.incident import (
    MemoryNow as MemoryNow,
)
from oomwatch.model.incident import (
    NodeInfo as NodeInfo,
)
from oomwatch.model.incident import (
    PodRef as PodRef,
)
from oomwatch.model.incident import (
    ProcessDetails as ProcessDetails,
)
from oomwatch.model.incident import (
    TopProcess as TopProcess,
)
from oomwatch.model.incident import (
    UnseenKillFacts as UnseenKillFacts,
)
from oomwatch.model.incident import (
    fingerprint as fingerprint,
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
