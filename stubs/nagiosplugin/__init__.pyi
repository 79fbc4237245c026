# A typed stub of the part of nagiosplugin (1.3.2 to 1.4) that check_imap uses.
from collections.abc import Callable, Iterator
from typing import Any

class ServiceState:
    code: int
    text: str
    def __int__(self) -> int: ...

Ok: ServiceState
Warn: ServiceState
Critical: ServiceState
Unknown: ServiceState

class Timeout(RuntimeError): ...
class CheckError(RuntimeError): ...

class Range:
    def __init__(self, spec: str | Range | None = ...) -> None: ...
    def match(self, value: float) -> bool: ...

class Metric:
    name: str
    value: Any
    uom: str | None
    min: float | None
    max: float | None
    context: str
    resource: Resource | None
    def __init__(
        self,
        name: str,
        value: Any,
        uom: str | None = ...,
        min: float | None = ...,
        max: float | None = ...,
        context: str | None = ...,
        contextobj: Context | None = ...,
        resource: Resource | None = ...,
    ) -> None: ...

class Performance:
    def __init__(
        self,
        label: str,
        value: Any,
        uom: str = ...,
        warn: Any = ...,
        crit: Any = ...,
        min: Any = ...,
        max: Any = ...,
    ) -> None: ...

class Resource:
    @property
    def name(self) -> str: ...
    def probe(self) -> Any: ...

class Result:
    state: ServiceState
    hint: str | None
    metric: Metric | None
    def __init__(
        self, state: ServiceState, hint: str | None = ..., metric: Metric | None = ...
    ) -> None: ...

class Results:
    def __iter__(self) -> Iterator[Result]: ...
    def __len__(self) -> int: ...
    @property
    def most_significant(self) -> list[Result]: ...

_Fmt = str | Callable[[Metric, Any], str] | None

class Context:
    name: str
    def __init__(self, name: str, fmt_metric: _Fmt = ..., result_cls: type = ...) -> None: ...
    def evaluate(self, metric: Metric, resource: Any) -> Result: ...
    def performance(self, metric: Metric, resource: Any) -> Performance | None: ...
    def describe(self, metric: Metric) -> str | None: ...

class ScalarContext(Context):
    warning: Range
    critical: Range
    def __init__(
        self,
        name: str,
        warning: str | Range | None = ...,
        critical: str | Range | None = ...,
        fmt_metric: _Fmt = ...,
        result_cls: type = ...,
    ) -> None: ...

class Summary:
    def ok(self, results: Results) -> str: ...
    def problem(self, results: Results) -> str: ...
    def verbose(self, results: Results) -> list[str] | str: ...

class Check:
    name: str
    results: Results
    perfdata: list[str]
    def __init__(self, *objects: Any, **kwargs: Any) -> None: ...
    def __call__(self) -> None: ...
    def main(self, verbose: Any = ..., timeout: Any = ...) -> None: ...
    @property
    def state(self) -> ServiceState: ...
    @property
    def summary_str(self) -> str: ...
    @property
    def verbose_str(self) -> list[str] | str: ...
    @property
    def exitcode(self) -> int: ...
