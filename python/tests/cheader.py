"""A deliberately small parser of the public headers: the field names of
typedef'd structs and the prototypes of moeplace_* functions (return type,
parameter list). Enough for moeplace's headers, which keep one simple style."""

import re

# Sizes of the scalar types the headers use (LP64 Linux).
SIZES = {"int": 4, "unsigned": 4, "size_t": 8, "int64_t": 8, "uint64_t": 8, "double": 8,
         "long": 8, "unsigned char": 1, "char": 1}


def strip(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#[^\n]*(\\\n[^\n]*)*", " ", text, flags=re.M)
    return text.replace('extern "C" {', " ")


def structs(text):
    """{name: [field names in order]} for every `typedef struct X {...} X;`."""
    out = {}
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{([^{}]*)\}\s*(\w+)\s*;", strip(text)):
        fields = []
        for decl in m.group(2).split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            if "(" in decl:  # a function pointer
                fields.append(re.search(r"\(\s*\*\s*(\w+)\s*\)", decl).group(1))
                continue
            for piece in decl.split(","):
                fields.append(re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", piece).group(1))
        out[m.group(3)] = fields
    return out


def kind(ctype):
    """'void', 'ptr', 'float', 'comm', 'struct' or 'int' for a C type."""
    t = " ".join(ctype.replace("const", " ").replace("struct ", " ").split())
    if "*" in t or "[" in t:
        return "ptr"
    if t == "void":
        return "void"
    if t in ("double", "float"):
        return "float"
    if t == "MPI_Comm":
        return "comm"
    if t.startswith("moeplace_") and not t.endswith(("_class", "_status", "_state", "_policy")):
        return "struct"
    return "int"


def size(ctype):
    t = " ".join(ctype.replace("const", " ").split())
    if t.startswith("moeplace_") and t.endswith(("_class", "_status", "_state", "_policy")):
        return 4  # enums
    return SIZES.get(t)


def functions(text):
    """{name: (return type, [parameter types])} of moeplace_* prototypes."""
    out = {}
    for stmt in re.split(r"[;{}]", strip(text)):
        m = re.match(r"^\s*([^()]*?)\b(moeplace_\w+)\s*\((.*)\)\s*$", stmt, flags=re.S)
        if not m or "typedef" in m.group(1) or not m.group(1).strip():
            continue
        params = " ".join(m.group(3).split())
        types = []
        if params not in ("", "void"):
            for p in params.split(","):
                p = p.strip()
                # drop the parameter name: the last identifier, unless the
                # parameter is only a type
                mm = re.match(r"^(.*?[\s\*])(\w+)\s*(\[[^\]]*\])?$", p)
                if mm and mm.group(1).strip():
                    p = mm.group(1) + ("*" if mm.group(3) else "")
                types.append(" ".join(p.split()))
        out[m.group(2)] = (" ".join(m.group(1).split()), types)
    return out
