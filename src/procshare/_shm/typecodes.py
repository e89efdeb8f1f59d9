"""Typecodes: multiprocessing's letters and ctypes' simple types, normalised to one letter."""

import ctypes

#: Typecodes a shared scalar or array element may have (ctypes letters, plus '?' for bool).
TYPECODES = "bBhHiIlLqQfdcu?"


def typecode_of(typecode_or_type: object) -> str:
    """The typecode letter for a typecode string or a ctypes simple type."""
    if isinstance(typecode_or_type, str):
        if len(typecode_or_type) == 1 and typecode_or_type in TYPECODES:
            return typecode_or_type
        raise ValueError(f"unknown typecode {typecode_or_type!r}; expected one of {TYPECODES!r}")
    if isinstance(typecode_or_type, type) and issubclass(typecode_or_type, ctypes._SimpleCData):
        code = getattr(typecode_or_type, "_type_", None)
        if isinstance(code, str) and code in TYPECODES:
            return code
        raise TypeError(
            f"ctypes.{typecode_or_type.__name__} cannot be shared: pointers and long double "
            "have no meaning in another process"
        )
    if isinstance(typecode_or_type, type) and issubclass(
        typecode_or_type, ctypes.Structure | ctypes.Union | ctypes.Array
    ):
        raise TypeError(
            f"{typecode_or_type.__name__} is a ctypes structure, union or array type: procshare "
            "shares one scalar type per Value or Array, each element read and written "
            "atomically, and a structure's fields cannot all be updated atomically together. "
            "Use one Value (or an Array) per field, a Dict, or an Array of bytes ('c') with "
            "struct and a Lock"
        )
    raise TypeError(
        f"expected a typecode string or a ctypes simple type, not {type(typecode_or_type).__name__}"
    )
