"""C/C++ export for TFLite Micro: the model as an aligned byte array, its constants, its op resolver.

`<name>.h` declares the array and length, #defines the arena size (measured +
margin), each input/output's shape, element type, scale and zero point, and an
inline function registering exactly the model's ops on a
`tflite::MicroMutableOpResolver<N>` (only compiled in C++ with the TFLM headers on
the include path, so the header also builds on a host without TFLM).
`<name>.cc` holds the data. Both files compile as C11 and C++11+: in C, `alignas`
comes from `<stdalign.h>` and `static_assert` from `<assert.h>`, so a C firmware
(Zephyr, ESP-IDF) includes the header and compiles the data as C (`-x c`, or
renamed to `.c`). Output bytes depend only on the inputs (no dates).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeopt.analysis.tflite_graph import TfliteGraph, TfliteTensor
from edgeopt.atomic import DISK_FULL, new_file_mode, no_space
from edgeopt.errors import InputError, OutputError, UnsupportedOpError
from edgeopt.mcu.ops import INT8_KERNELS, adder_for, int8_only_ops
from edgeopt.mcu.variables import resource_variables

C_KEYWORDS = frozenset("""alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
char32_t class compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield
decltype default delete do double dynamic_cast else enum explicit export extern false float for friend goto if
inline int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public
register reinterpret_cast requires restrict return short signed sizeof static static_assert static_cast struct
switch template this thread_local throw true try typedef typeid typename union unsigned using virtual void
volatile wchar_t while xor xor_eq _Bool _Complex _Imaginary""".split())  # noqa: SIM905 - a word list reads best as text

C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
           "float32": "float", "float16": "uint16_t", "bool": "bool", "uint16": "uint16_t", "uint32": "uint32_t"}
TFLITE_TYPES = {"int8": "kTfLiteInt8", "uint8": "kTfLiteUInt8", "int16": "kTfLiteInt16", "int32": "kTfLiteInt32",
                "int64": "kTfLiteInt64", "float32": "kTfLiteFloat32", "float16": "kTfLiteFloat16", "bool": "kTfLiteBool"}
ELEMENT_BYTES = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "float16": 2, "int32": 4,
                 "uint32": 4, "float32": 4, "int64": 8, "float64": 8}


# Bytes copied as they are into generated comments and string literals; everything else (newlines, `\`, `?`
# of a `??/` trigraph, `*` of `*/`, quotes, non-ASCII) becomes a 3-digit octal escape, which cannot run on.
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-+.,:;/=()[]{}<>#@!~^&|%$")


def c_text(text: str) -> str:
    """`text` (a tensor, op or file name from the model or profile) made inert in a C comment or string."""
    return "".join(chr(b) if b in _PLAIN else f"\\{b:03o}" for b in str(text).encode("utf-8", "replace"))


def check_c_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or "") or name in C_KEYWORDS:
        msg = f"--name '{name}' is not a valid C identifier; use letters, digits and '_', not starting with a digit (e.g. g_model)"
        raise InputError(msg)
    if name.startswith("__") or re.match(r"_[A-Z]", name):
        msg = f"--name '{name}' is reserved in C/C++ (leading '__' or '_' + capital); use e.g. g_model"
        raise InputError(msg)
    return name


@dataclass(frozen=True)
class CFiles:
    header: Path
    source: Path
    resolver_ops: tuple[str, ...]  # AddXxx methods, in registration order
    int8_only: tuple[str, ...] = ()  # ops registered with their int8-only kernel (every tensor of theirs is int8)


def tensor_bytes(t: TfliteTensor) -> int:
    return t.elements * ELEMENT_BYTES.get(t.dtype, 1)


def _float(v: float) -> str:
    s = f"{v:.9g}"
    if not any(c in s for c in ".eEn"):
        s += ".0"
    return s + "f"


def _tensor_defines(prefix: str, kind: str, i: int, t: TfliteTensor, layout: str | None = None) -> list[str]:
    p = f"{prefix}_{kind}{i}"
    shape = tuple(max(d, 1) for d in t.shape)
    lines = [
        f"// {kind.lower()} {i}: '{c_text(t.name)}'",
        *([f"#define {p}_LAYOUT \"{c_text(layout)}\"  // dimension order of {p}_SHAPE"] if layout else []),
        f"#define {p}_DIMS {len(shape)}",
        f"#define {p}_SHAPE {{{', '.join(str(d) for d in shape)}}}",
        f"#define {p}_ELEMENTS {t.elements}",
        f"#define {p}_BYTES {tensor_bytes(t)}",
        f"#define {p}_DTYPE \"{c_text(t.dtype)}\"",
        f"#define {p}_CTYPE {C_TYPES.get(t.dtype, 'uint8_t')}",
        f"#define {p}_TFLITE_TYPE {TFLITE_TYPES.get(t.dtype, 'kTfLiteNoType')}",
    ]
    if t.quantized:
        note = f"  // per-channel: {len(t.scale)} scales, first shown" if len(t.scale) > 1 else ""
        lines += [f"// real value = {p}_SCALE * (q - {p}_ZERO_POINT)",
                  f"#define {p}_SCALE {_float(t.scale[0])}{note}", f"#define {p}_ZERO_POINT {t.zero_point[0] if t.zero_point else 0}"]
    else:
        lines += [f"#define {p}_SCALE 0.0f  // not quantized", f"#define {p}_ZERO_POINT 0"]
    return lines


def _int8_note(prefix: str, int8: tuple[str, ...]) -> list[str]:
    if not int8:
        return []
    return [
        f"// Every tensor of {', '.join(int8)} is int8: each registers its int8-only kernel, so",
        "// the int16 / int4 / float variants of those kernels stay out of flash. Define",
        f"// {prefix}_ALL_KERNEL_VARIANTS to register the generic (every-type) kernels instead.",
        f"#ifdef {prefix}_ALL_KERNEL_VARIANTS",
        f"#define {prefix}_INT8_KERNEL(registration)",
        "#else",
        f"#define {prefix}_INT8_KERNEL(registration) registration",
        "#endif",
        "",
    ]


def _variable_recipe(prefix: str, name: str, names: tuple[str, ...]) -> list[str]:
    """The resource-variable count and, for a stateful model, how to create the interpreter with its table."""
    lines = [f"// Resource variables (VAR_HANDLE shared names) the interpreter must hold: {len(names)}.",
             f"#define {prefix}_RESOURCE_VARIABLES {len(names)}"]
    if not names:
        return [*lines, ""]
    shown = ", ".join(c_text(n) for n in names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")
    return [
        *lines,
        f"// A stateful (streaming) model: {shown}. State is carried from one Invoke() to the next; CALL_ONCE",
        "// initialises it on the first. Create the interpreter with a MicroResourceVariables table:",
        f"//   tflite::MicroAllocator* allocator = tflite::MicroAllocator::Create(tensor_arena, {prefix}_ARENA_SIZE);",
        "//   tflite::MicroResourceVariables* variables =",
        f"//       tflite::MicroResourceVariables::Create(allocator, {prefix}_RESOURCE_VARIABLES);",
        f"//   tflite::MicroInterpreter interpreter(tflite::GetModel({name}), resolver, allocator, variables);",
        "// (headers tensorflow/lite/micro/micro_allocator.h and micro_resource_variable.h); both live in the arena,",
        "// which the measured size includes. A new interpreter starts from the initial state again.",
        "",
    ]


def render(model: bytes, graph: TfliteGraph, name: str, *, arena_bytes: int, arena_measured: int,
           margin_note: str, source_name: str, version: str,
           layouts: tuple[tuple[str | None, ...], tuple[str | None, ...]] = ((), ()),
           notes: tuple[str, ...] = ()) -> tuple[str, str, tuple[str, ...]]:
    """The text of `<name>.h` and `<name>.cc`, and the resolver methods used. `layouts`: (per input, per output)
    how its dimensions are ordered, when known (a build from an ONNX model: "NHWC (the source model's NCHW)");
    `notes`: comment lines before the tensors (edgeopt.mcu.io_layout: where the order comes from, each tensor)."""
    check_c_name(name)
    missing = tuple(o for o in graph.op_names if adder_for(o) is None)
    if missing:
        msg = f"{source_name}: TFLite Micro has no kernel for {', '.join(missing)}; no C export"
        raise UnsupportedOpError(msg, missing)
    adders = tuple(sorted({adder_for(o) or "" for o in graph.op_names}))
    variables = resource_variables(graph, source_name)
    int8 = int8_only_ops(graph)
    prefix = name.upper()
    guard = f"EDGEOPT_{prefix}_H_"
    sha = hashlib.sha256(model).hexdigest()
    source_name, version, margin_note = c_text(source_name), c_text(version), c_text(margin_note)
    head = [
        f"// Generated by edgeopt {version} from {source_name}; do not edit.",
        f"// Model sha256 {sha}",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "#ifndef __cplusplus",
        "#include <stdalign.h>  // alignas in C11",
        "#include <stdbool.h>",
        "#endif",
        "",
        f"#define {prefix}_LEN {len(model)}",
        f"// Tensor arena: {arena_measured} bytes measured in the TFLite Micro interpreter (host), {margin_note}.",
        f"// Declare it as: alignas(16) static uint8_t tensor_arena[{prefix}_ARENA_SIZE];",
        f"#define {prefix}_ARENA_SIZE {arena_bytes}",
        f"#define {prefix}_ARENA_MEASURED {arena_measured}",
        f"#define {prefix}_MACS {graph.macs}",
        f"#define {prefix}_OP_COUNT {len(adders)}",
        f"#define {prefix}_NUM_INPUTS {len(graph.inputs)}",
        f"#define {prefix}_NUM_OUTPUTS {len(graph.outputs)}",
        "",
        *_variable_recipe(prefix, name, variables.names),
        *(f"// {c_text(n)}" for n in notes),
        *([""] if notes else []),
    ]
    def known(which: tuple[str | None, ...], i: int) -> str | None:
        return which[i] if i < len(which) else None

    for i, t in enumerate(graph.inputs):
        head += _tensor_defines(prefix, "INPUT", i, t, known(layouts[0], i)) + [""]
    for i, t in enumerate(graph.outputs):
        head += _tensor_defines(prefix, "OUTPUT", i, t, known(layouts[1], i)) + [""]
    head += [
        "// The model flatbuffer, 16-byte aligned as TFLite Micro requires (C linkage: C and C++ share it).",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        f"alignas(16) extern const unsigned char {name}[{prefix}_LEN];",
        f"extern const unsigned int {name}_len;",
        "#ifdef __cplusplus",
        '}  // extern "C"',
        "#endif",
        "",
        f"// The op resolver needs C++ and the TFLite Micro headers; define {prefix}_NO_TFLM to leave it out.",
        f"#if defined(__cplusplus) && !defined({prefix}_NO_TFLM) && defined(__has_include)",
        '#if __has_include("tensorflow/lite/micro/micro_mutable_op_resolver.h")',
        f"#define {prefix}_HAS_TFLM 1",
        "#endif",
        "#endif",
        "",
        f"#ifdef {prefix}_HAS_TFLM",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        *[f'#include "{h}"' for h in sorted({INT8_KERNELS[o].header for o in int8})],
        "",
        f"using {name}_op_resolver_t = tflite::MicroMutableOpResolver<{prefix}_OP_COUNT>;",
        "",
        *_int8_note(prefix, int8),
        f"// Registers exactly the {len(adders)} op(s) of the model: {c_text(', '.join(graph.op_names))}.",
        f"inline TfLiteStatus {name}_register_ops({name}_op_resolver_t& resolver) {{",
    ]
    for adder, op in sorted((adder_for(o) or "", o) for o in graph.op_names):
        kernel = f"{prefix}_INT8_KERNEL({INT8_KERNELS[op].registration}())" if op in int8 else ""
        head.append(f"  if (resolver.{adder}({kernel}) != kTfLiteOk) return kTfLiteError;")
    head += ["  return kTfLiteOk;", "}", f"#endif  // {prefix}_HAS_TFLM", "", f"#endif  // {guard}", ""]

    rows = []
    for k in range(0, len(model), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in model[k:k + 12]) + ",")
    body = [
        f"// Generated by edgeopt {version} from {source_name}; do not edit.",
        f'#include "{name}.h"',
        "#ifndef __cplusplus",
        "#include <assert.h>  // static_assert in C11",
        "#endif",
        "",
        f"alignas(16) const unsigned char {name}[] = {{",
        *rows,
        "};",
        f"const unsigned int {name}_len = {len(model)};",
        "",
        f'static_assert(sizeof({name}) == {prefix}_LEN, "model length mismatch");',
        "",
    ]
    return "\n".join(head), "\n".join(body), adders


def write_files(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write all files or none: temp files in `out_dir`, fsync, then rename each over its target."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create output folder {out_dir}: {exc.strerror or exc}"
        raise OutputError(msg) from None
    temps: list[tuple[Path, Path]] = []
    try:
        for fname, text in files.items():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=out_dir)
            temps.append((Path(tmp_name), out_dir / fname))
            with os.fdopen(fd, "wb") as fh:
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, dst in temps:
            tmp.chmod(new_file_mode())
            tmp.replace(dst)
    except OSError as exc:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if exc.errno in DISK_FULL:
            raise no_space(out_dir, sum(len(t.encode("utf-8")) for t in files.values())) from None
        msg = f"cannot write into {out_dir}: {exc.strerror or exc}; choose another --out or fix its permissions"
        raise OutputError(msg) from None
    return [dst for _, dst in temps]


def export_c(model_path: Path, graph: TfliteGraph, out_dir: Path, name: str, *, arena_bytes: int,
             arena_measured: int, margin_note: str,
             layouts: tuple[tuple[str | None, ...], tuple[str | None, ...]] = ((), ()),
             notes: tuple[str, ...] = ()) -> CFiles:
    from edgeopt import __version__

    model = Path(model_path).read_bytes()
    header, source, adders = render(model, graph, name, arena_bytes=arena_bytes, arena_measured=arena_measured,
                                    margin_note=margin_note, source_name=Path(model_path).name, version=__version__,
                                    layouts=layouts, notes=notes)
    h, cc = write_files(out_dir, {f"{name}.h": header, f"{name}.cc": source})
    return CFiles(header=h, source=cc, resolver_ops=adders, int8_only=int8_only_ops(graph))
