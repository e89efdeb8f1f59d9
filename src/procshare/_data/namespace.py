"""Namespace: attribute access to a shared Dict, as a Manager's Namespace offers it."""

from __future__ import annotations

from multiprocessing import managers
from typing import Any

from .._shm.shared import ProxyMethods
from .dict import Dict


class Namespace(ProxyMethods):
    """``Namespace(*, name=None, **attributes)``: ``ns.x = 1`` in one process, ``ns.x`` in all.

    ``name=`` names the segment, as on every procshare type; an attribute
    called ``name`` is set after construction (``ns.name = ...``).

    Attributes live in a shared Dict, ``ns._dict`` (one atomic store each; its
    ``name`` and ``unlink()`` are the namespace's); every other name that starts
    with ``_`` is the handle's own, as on multiprocessing's NamespaceProxy, and
    every name that does not is the user's.  The repr is multiprocessing's:
    ``Namespace(a=1, b=2)``.
    """

    _dict: Dict  # names starting with "_" are this handle's own attributes

    def __init__(self, *, name: str | None = None, **attributes: Any) -> None:
        object.__setattr__(self, "_dict", Dict(name=name))
        self._dict.update(attributes)

    @classmethod
    def _of(cls, d: Dict) -> Namespace:
        ns = object.__new__(cls)
        object.__setattr__(ns, "_dict", d)
        return ns

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        try:
            return self._dict[attr]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {attr!r}"
            ) from None

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr.startswith("_"):
            object.__setattr__(self, attr, value)
        else:
            self._dict[attr] = value

    def __delattr__(self, attr: str) -> None:
        if attr.startswith("_"):
            object.__delattr__(self, attr)
            return
        try:
            del self._dict[attr]
        except KeyError:
            raise AttributeError(attr) from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {k for k in self._dict if isinstance(k, str)})

    def _getvalue(self) -> managers.Namespace:
        """A plain copy, as multiprocessing's proxies give it: a managers.Namespace."""
        return managers.Namespace(**{k: v for k, v in self._dict.items() if isinstance(k, str)})

    def __reduce__(self) -> tuple[Any, ...]:
        return (Namespace._of, (self._dict,))

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k}={v!r}" for k, v in self._dict.items() if isinstance(k, str) and k[:1] != "_"
        )
        return f"{type(self).__name__}({items})"
