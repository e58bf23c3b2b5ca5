"""Every public class, function and method of the package has a docstring
(help(moeplace.Runtime) documents every method)."""

import inspect

import moeplace
from moeplace import runtime


def test_docstrings():
    missing = []
    names = list(moeplace.__all__)
    for name in names:
        obj = getattr(moeplace, name) if name not in runtime.__all__ else getattr(runtime, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for mname, m in vars(obj).items():
                if mname.startswith("_") and mname != "__init__":
                    continue
                if isinstance(m, (staticmethod, classmethod)):
                    m = m.__func__
                if isinstance(m, property):
                    m = m.fget
                if callable(m) and not (m.__doc__ or "").strip():
                    missing.append("%s.%s" % (name, mname))
    assert not missing, "no docstring: %s" % missing
    assert "record" in runtime.Runtime.__dict__ and "step" in runtime.Runtime.__dict__
