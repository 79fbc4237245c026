from collections.abc import Callable
from typing import Any

def with_timeout(t: int, func: Callable[..., object], *args: Any, **kwargs: Any) -> None: ...
