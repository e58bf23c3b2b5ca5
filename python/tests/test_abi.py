"""The binding cannot silently disagree with the C headers:

- every struct the binding mirrors has the C compiler's size, and each of
  its fields the compiler's offset and size (tests/python_abi, built by
  make check, prints them) and the headers' field names, in order;
- every function the binding declares is exported by the library, and its
  arity, parameter kinds (pointer/integer/floating) and integer widths
  match the header prototype; every header function is either declared or
  listed in UNBOUND on purpose."""

import ctypes
import glob
import json
import os
import subprocess

import pytest

from moeplace import _lib
import cheader

INCLUDE = os.environ["MOEPLACE_INCLUDEDIR"]
# Header functions the binding leaves out on purpose.
UNBOUND = {"moeplace_backtest_config_init", "moeplace_backtest_run",
           "moeplace_backtest_result_free",
           # the writable moeplace_placement_phy2log/share serve both uses
           "moeplace_placement_phy2log_const", "moeplace_placement_share_const"}


def _headers(runtime):
    paths = sorted(glob.glob(os.path.join(INCLUDE, "moeplace", "*.h")))
    if not runtime:
        paths = [p for p in paths if not p.endswith("runtime.h")]
    return "\n".join(open(p).read() for p in paths)


@pytest.fixture(scope="module")
def abi():
    prog = os.environ.get("MOEPLACE_ABI_PROG")
    if not prog:
        pytest.skip("MOEPLACE_ABI_PROG not set (make check builds tests/python_abi)")
    out = subprocess.run([prog], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _mirrored(abi):
    structs = dict(_lib.STRUCTS)
    if abi["runtime"]:
        structs.update(_lib.MPI_STRUCTS)
    return structs


def test_every_mirrored_struct_is_measured(abi):
    assert set(_mirrored(abi)) == set(abi["structs"]), \
        "tests/python_abi.c and python/moeplace/_lib.py list different structs"


def test_struct_layout_matches_the_compiler(abi):
    problems = []
    for name, cls in _mirrored(abi).items():
        c = abi["structs"][name]
        if ctypes.sizeof(cls) != c["size"]:
            problems.append("%s: sizeof %d in C, %d in ctypes" % (name, c["size"],
                                                                  ctypes.sizeof(cls)))
        py_fields = [f for f, _ in cls._fields_]
        if py_fields != list(c["fields"]):
            problems.append("%s: fields %s in tests/python_abi.c, %s in ctypes"
                            % (name, list(c["fields"]), py_fields))
        for f, _ in cls._fields_:
            if f not in c["fields"]:
                continue
            off, size = c["fields"][f]
            d = getattr(cls, f)
            if (d.offset, d.size) != (off, size):
                problems.append("%s.%s: offset/size %d/%d in C, %d/%d in ctypes"
                                % (name, f, off, size, d.offset, d.size))
    assert not problems, "\n".join(problems)


def test_struct_fields_match_the_headers(abi):
    parsed = cheader.structs(_headers(abi["runtime"]))
    problems = []
    for name, cls in _mirrored(abi).items():
        if name not in parsed:
            problems.append("%s: not found in the headers" % name)
            continue
        py = [f for f, _ in cls._fields_]
        if parsed[name] != py:
            problems.append("%s: header fields %s, ctypes fields %s (and update "
                            "tests/python_abi.c)" % (name, parsed[name], py))
    assert not problems, "\n".join(problems)


def _ctypes_kind(t):
    if t is None:
        return "void", None
    if t is _lib.MPI_COMM:
        return "comm", None
    if t in (ctypes.c_void_p, ctypes.c_char_p) or hasattr(t, "contents") or \
            (isinstance(t, type) and issubclass(t, ctypes._Pointer)):
        return "ptr", None
    if t in (ctypes.c_double, ctypes.c_float):
        return "float", None
    if isinstance(t, type) and issubclass(t, ctypes.Structure):
        return "struct", None
    return "int", ctypes.sizeof(t)


def _check_functions(table, header_text):
    protos = cheader.functions(header_text)
    problems = []
    for name, (restype, argtypes) in table.items():
        if name not in protos:
            problems.append("%s: declared by the binding, not in the headers" % name)
            continue
        ret, params = protos[name]
        if len(params) != len(argtypes):
            problems.append("%s: %d parameters in the header, %d in the binding"
                            % (name, len(params), len(argtypes)))
            continue
        for i, (ct, pt) in enumerate([(restype, ret)] + list(zip(argtypes, params))):
            k, sz = _ctypes_kind(ct)
            hk = cheader.kind(pt)
            what = "return" if i == 0 else "parameter %d" % i
            if k != hk:
                problems.append("%s: %s is %s (%s) in the header, %s in the binding"
                                % (name, what, hk, pt, k))
            elif k == "int" and cheader.size(pt) not in (None, sz):
                problems.append("%s: %s is %s (%d bytes), %d bytes in the binding"
                                % (name, what, pt, cheader.size(pt), sz))
    return protos, problems


def test_core_functions_match_the_headers():
    protos, problems = _check_functions(_lib.FUNCTIONS, _headers(runtime=False))
    missing = set(protos) - set(_lib.FUNCTIONS) - UNBOUND
    problems += ["%s: in the headers, neither bound nor in UNBOUND" % n for n in sorted(missing)]
    assert not problems, "\n".join(problems)
    assert len(protos) > 60  # the parser did see the headers


def test_core_functions_are_exported():
    lib = ctypes.CDLL(_lib._find("moeplace")[0])
    missing = [n for n in _lib.FUNCTIONS if not hasattr(lib, n)]
    assert not missing, "not exported by libmoeplace: %s" % missing


def test_runtime_functions(abi):
    if not abi["runtime"]:
        pytest.skip("built without MPI")
    text = open(os.path.join(INCLUDE, "moeplace", "runtime.h")).read()
    protos, problems = _check_functions(_lib.MPI_FUNCTIONS, text)
    missing = set(protos) - set(_lib.MPI_FUNCTIONS)
    problems += ["%s: in runtime.h, not bound" % n for n in sorted(missing)]
    assert not problems, "\n".join(problems)
    _lib.core()
    lib = ctypes.CDLL(_lib._find("moeplace-mpi")[0])
    missing = [n for n in _lib.MPI_FUNCTIONS if not hasattr(lib, n)]
    assert not missing, "not exported by libmoeplace-mpi: %s" % missing


def test_the_parser_catches_a_change():
    """The checks above would fail on the changes the ABI policy expects:
    a field carved out of the reserved tail, a parameter added."""
    text = """typedef struct moeplace_place_options { double migration_weight;
      double byte_budget, expert_bytes, min_gain; int max_iterations; double time_limit_ms;
      double new_field; int64_t reserved[7]; } moeplace_place_options;
      int moeplace_place_options_init(moeplace_place_options *opt, int extra);"""
    fields = cheader.structs(text)["moeplace_place_options"]
    assert fields[-2:] == ["new_field", "reserved"]
    assert fields != [f for f, _ in _lib.PlaceOptions._fields_]
    _, problems = _check_functions({"moeplace_place_options_init":
                                    _lib.FUNCTIONS["moeplace_place_options_init"]}, text)
    assert problems


def test_constants_match_the_headers():
    """Status codes (errors.py), link classes and the state values."""
    import re
    from moeplace import errors, placement, predict
    text = cheader.strip(_headers(runtime=False))
    status = dict((m.group(1), int(m.group(2)))
                  for m in re.finditer(r"MOEPLACE_(OK|ERR_\w+)\s*=\s*(-?\d+)", text))
    assert status and all(getattr(errors, n) == v for n, v in status.items()), status
    links = dict((m.group(1).lower(), int(m.group(2)))
                 for m in re.finditer(r"MOEPLACE_LINK_(\w+)\s*=\s*(-?\d+)", text))
    assert {n: links[n] for n in placement.LINK_CLASSES} == \
        {n: i for i, n in enumerate(placement.LINK_CLASSES)}
    states = dict((m.group(1), int(m.group(2)))
                  for m in re.finditer(r"MOEPLACE_STATE_(\w+)\s*=\s*(\d+)", text))
    assert states == {"TRANSIENT": predict.TRANSIENT, "STABLE": predict.STABLE}


def test_abi_major_matches_the_header():
    import re
    m = re.search(r"#define MOEPLACE_VERSION_MAJOR (\d+)",
                  open(os.path.join(INCLUDE, "moeplace", "base.h")).read())
    assert int(m.group(1)) == _lib.ABI_MAJOR
    import moeplace
    assert moeplace.version().split(".")[0] == str(_lib.ABI_MAJOR)
