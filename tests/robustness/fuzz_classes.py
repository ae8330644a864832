"""Input classes of the fuzzer that are folders, not one mutated file (issue #21 item 7).

    savedmodel  a small real SavedModel whose saved_model.pb is edited with the protobuf API: ops that carry a
                graph in a string (DatasetFromGraph holding a GraphDef with WriteFile), function-valued attrs on
                the saver's restore node pointing at serving functions, file-reading dataset ops the denylist
                does not name (CSVDataset, MatchingFilesDataset, RecordInput, SnapshotChunkDataset,
                DecodeProtoV2 with a descriptor file)
    onnxfn      ONNX model-local function fan-out: nested functions each calling the next k times, depth d;
                recursion; a function defined twice; a call to a function nobody defines
    tflmcache   a copy of a small real TFLM library cache (three sources compiled once) with objects, libtflm.a
                or index.json truncated, flipped, replaced by symbolic links, its folders' permissions loosened;
                run through LibraryCache.checked_archive (what a firmware link uses), not a firmware build
    searchdb    an OUT of `edgeopt search` (a real Optuna SQLite search.db, one finished trial in trials/0000)
                whose trial attributes or files are hostile; run through trial_files (what OUT/best is made from)

Every hostile path points into the case's own sentinel folder (caseNNNNNN.sentinel), which holds one file,
`victim`: the oracle (fuzzer.escaped) says a case escaped when that folder gained, lost or changed anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VICTIM = b"the sentinel file: nothing may change, remove or add to this folder\n"
NEW_KINDS = ("savedmodel", "onnxfn", "tflmcache", "searchdb")
TFLM_SOURCES = ("tensorflow/lite/micro/cortex_m_generic/debug_log.cc",
                "third_party/cmsis_nn/Source/ActivationFunctions/arm_relu6_s8.c",
                "third_party/cmsis_nn/Source/ReshapeFunctions/arm_reshape_s8.c")


def make_sentinel(s: Path) -> Path:
    """The folder `s` (made 0700) holding only `victim`."""
    s.mkdir(mode=0o700, exist_ok=True)
    (s / "victim").write_bytes(VICTIM)
    (s / "victim").chmod(0o600)
    return s


def sentinel_state(sentinel: Path) -> str:
    """What the oracle compares: the folder's names, the victim's bytes and mode."""
    try:
        names = sorted(p.name for p in sentinel.iterdir())
        victim = sentinel / "victim"
        st = os.lstat(victim)
        data = b"<link>" if victim.is_symlink() else victim.read_bytes()
        return json.dumps([names, hashlib.sha256(data).hexdigest(), oct(st.st_mode)])
    except OSError as exc:
        return f"unreadable: {exc}"


def _copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


# --------------------------------------------------------------------------- savedmodel

_BUILD_SAVED_MODEL = """
import sys, tensorflow as tf
class M(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones([4, 2]))
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return tf.matmul(x, self.w)
m = M()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.__call__})
"""


def base_saved_model() -> Path:
    """A small real SavedModel (one variable, serving_default), built once per user and TF version in a subprocess."""
    from importlib.metadata import version

    cache = Path(tempfile.gettempdir()) / f"edgeopt-fuzz-{os.getuid()}" / f"saved_model-tf{version('tensorflow')}"
    if (cache / "saved_model.pb").is_file():
        return cache
    cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache.parent)) / "m"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", _BUILD_SAVED_MODEL, str(tmp)], check=True, capture_output=True, env=env,
                   timeout=600)
    try:
        tmp.rename(cache)
    except OSError:  # another run made it first
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return cache


def _graph_with_write(path: str) -> bytes:
    from tensorflow.core.framework import graph_pb2

    g = graph_pb2.GraphDef()
    for name, value in (("filename", path.encode()), ("contents", b"pwned")):
        n = g.node.add(name=name, op="Const")
        n.attr["dtype"].type = 7  # DT_STRING
        n.attr["value"].tensor.dtype = 7
        n.attr["value"].tensor.string_val.append(value)
    w = g.node.add(name="write", op="WriteFile")
    w.input.extend(["filename", "contents"])
    return g.SerializeToString()


def _const(nodes, name: str, values: list[bytes], fn: bool, vector: bool = False) -> str:
    n = nodes.add(name=name, op="Const")
    n.attr["dtype"].type = 7
    n.attr["value"].tensor.dtype = 7
    n.attr["value"].tensor.string_val.extend(values)
    if vector or len(values) != 1:
        n.attr["value"].tensor.tensor_shape.dim.add(size=len(values))
    return f"{name}:output:0" if fn else name


def _hostile_nodes(nodes, kind: str, victim: str, rng: random.Random, fn: bool) -> None:
    """Append nodes of `kind` to a NodeDef list (a function body when `fn`, else a top-level graph)."""
    def const(name: str, *values: bytes) -> str:
        return _const(nodes, f"fz_{name}", list(values), fn)

    if kind == "dataset_from_graph":
        g = const("graph", _graph_with_write(victim + ".written"))
        n = nodes.add(name="fz_dfg", op="DatasetFromGraph")
        n.input.append(g)
    elif kind == "csv":
        files = const("files", victim.encode())
        n = nodes.add(name="fz_csv", op="CSVDataset")
        n.input.append(files)
        n.attr["output_types"].list.type.append(7)
    elif kind == "matching_files":
        pat = const("pattern", (str(Path(victim).parent) + "/*").encode())
        n = nodes.add(name="fz_mf", op="MatchingFilesDataset")
        n.input.append(pat)
    elif kind == "record_input":
        n = nodes.add(name="fz_ri", op="RecordInput")
        n.attr["file_pattern"].s = (str(Path(victim).parent) + "/*").encode()
    elif kind == "snapshot_chunk":
        chunk = const("chunk", victim.encode())
        n = nodes.add(name="fz_sc", op="SnapshotChunkDataset")
        n.input.append(chunk)
        n.attr["output_types"].list.type.append(7)
    elif kind == "decode_proto":
        b = const("bytes", b"")
        n = nodes.add(name="fz_dp", op="DecodeProtoV2")
        n.input.append(b)
        n.attr["message_type"].s = b"x.Y"
        n.attr["descriptor_source"].s = victim.encode()
        n.attr["field_names"].list.s.append(b"a")
        n.attr["output_types"].list.type.append(1)
    elif kind == "write_in_string_attr":  # a GraphDef hidden in a string attr of an op the scanner does not parse
        n = nodes.add(name="fz_attr", op="NoOp")
        n.attr["graph"].s = _graph_with_write(victim + ".written")
    if rng.random() < 0.3 and len(nodes):  # a garbage input reference, sometimes
        nodes[-1].input.append(rng.choice(("missing:0", "fz_missing:output:7", "^ghost", "")))


SM_KINDS = ("dataset_from_graph", "csv", "matching_files", "record_input", "snapshot_chunk", "decode_proto",
            "write_in_string_attr", "restore_calls_serving", "restore_calls_checkpoint_fn")


def mutate_saved_model(base: Path, dst: Path, sentinel: Path, case_id: int, rng: random.Random) -> str:
    """Copy `base` to `dst` and edit its saved_model.pb; returns the mutation's name."""
    from tensorflow.core.framework import function_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    _copy(base, dst)
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((dst / "saved_model.pb").read_bytes())
    meta = sm.meta_graphs[0]
    graph = meta.graph_def
    kind = rng.choice(SM_KINDS)
    victim = str(sentinel / f"case{case_id:06d}")
    if rng.random() < 0.5:
        victim = str(sentinel / "victim")
    serving = [f for f in graph.library.function if "__call__" in f.signature.name or "inference" in f.signature.name]
    funcs = serving or list(graph.library.function)
    restore = meta.saver_def.restore_op_name.split(":")[0]
    restore_nodes = [n for n in graph.node if n.name == restore]
    where = rng.choice(("function", "graph", "init"))
    if kind.startswith("restore_calls"):
        if not restore_nodes or not funcs:
            where = "none"
        else:
            target = rng.choice(funcs)
            if kind == "restore_calls_checkpoint_fn":  # the called function saves a checkpoint to the victim
                f = function_pb2.FunctionDef()
                f.signature.name = f"fz_saver_{case_id}"
                prefix = _const(f.node_def, "prefix", [victim.encode()], True)
                names = _const(f.node_def, "names", [b"x"], True, vector=True)  # SaveV2 wants rank-1 names/slices
                slices = _const(f.node_def, "slices", [b""], True, vector=True)
                s = f.node_def.add(name="save", op="SaveV2")
                s.input.extend([prefix, names, slices, names])
                s.attr["dtypes"].list.type.append(7)
                graph.library.function.append(f)
                target = f
            node = restore_nodes[0]
            if rng.random() < 0.5:
                node.attr["fz_f"].func.name = target.signature.name
            else:
                node.attr["fz_fs"].list.func.add(name=target.signature.name)
            where = "restore"
    elif where == "function" and funcs:
        _hostile_nodes(rng.choice(funcs).node_def, kind, victim, rng, fn=True)
    else:
        _hostile_nodes(graph.node, kind, victim, rng, fn=False)
        if where == "init":  # make the init op (run when TF loads the graph) depend on the last node added
            init = meta.signature_def.get("__saved_model_init_op")
            name = init.outputs["__saved_model_init_op"].name.split(":")[0] if init else ""
            for n in graph.node:
                if n.name == name:
                    n.input.append("^" + graph.node[-1].name)
    (dst / "saved_model.pb").write_bytes(sm.SerializeToString())
    return f"{kind}@{where}"


# --------------------------------------------------------------------------- onnxfn


def make_onnx_functions(dst: Path, rng: random.Random) -> str:
    """A model whose main graph calls f0; f_i calls f_{i+1} k times; plus recursion / duplicates / unknown calls."""
    from onnx import TensorProto, helper

    kind = rng.choice(("fanout", "fanout", "fanout_huge", "recursion", "self", "duplicate", "undefined", "deep_chain"))
    depth = {"fanout": rng.randint(1, 8), "fanout_huge": rng.randint(20, 60), "deep_chain": rng.choice((500, 3000)),
             }.get(kind, rng.randint(1, 4))
    k = {"fanout": rng.randint(1, 4), "fanout_huge": rng.randint(2, 4), "deep_chain": 1}.get(kind, rng.randint(1, 3))
    dom = "fz"
    funcs = []
    for i in range(depth):
        if i == depth - 1:
            nodes = [helper.make_node("Relu", ["x"], ["y"])]
        else:
            nodes, prev = [], "x"
            for j in range(k):
                out = "y" if j == k - 1 else f"t{j}"
                nodes.append(helper.make_node(f"f{i + 1}", [prev], [out], domain=dom))
                prev = out
        funcs.append(helper.make_function(dom, f"f{i}", ["x"], ["y"], nodes, [helper.make_opsetid("", 17), helper.make_opsetid(dom, 1)]))
    if kind in ("recursion", "self"):
        back = 0 if kind == "recursion" else depth - 1
        funcs[-1] = helper.make_function(dom, f"f{depth - 1}", ["x"], ["y"],
                                         [helper.make_node(f"f{back}", ["x"], ["y"], domain=dom)],
                                         [helper.make_opsetid("", 17), helper.make_opsetid(dom, 1)])
    elif kind == "duplicate":
        funcs.append(funcs[rng.randrange(len(funcs))])
    elif kind == "undefined":
        funcs[-1] = helper.make_function(dom, f"f{depth - 1}", ["x"], ["y"],
                                         [helper.make_node("ghost", ["x"], ["y"], domain=dom)],
                                         [helper.make_opsetid("", 17), helper.make_opsetid(dom, 1)])
    graph = helper.make_graph([helper.make_node("f0", ["x"], ["y"], domain=dom)], "fz",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, functions=funcs, opset_imports=[helper.make_opsetid("", 17),
                                                                     helper.make_opsetid(dom, 1)])
    model.ir_version = 8
    dst.write_bytes(model.SerializeToString())
    return f"{kind}:d{depth}k{k}"


# --------------------------------------------------------------------------- tflmcache


def tflm_dir() -> Path:
    env = os.environ.get("EDGEOPT_TFLM")
    return Path(env) if env else ROOT.parent / "shared" / "tflm"


def base_tflm_cache(workdir: Path) -> Path:
    """An XDG_CACHE_HOME holding a verified library of three TFLM sources (compiled once, a few seconds)."""
    xdg = workdir / "tflm-base" / "xdg"
    if (xdg / "edgeopt").is_dir():
        return xdg
    code = ("import sys; from tests.robustness.fuzz_lib import open_cache; c = open_cache(); "
            "sys.exit(0 if c.compile([c.tree.tree / s for s in sys.argv[1:]]) == len(sys.argv[1:]) else 1)")
    env = dict(os.environ, XDG_CACHE_HOME=str(xdg), PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code, *TFLM_SOURCES], check=True, capture_output=True, env=env, cwd=ROOT,
                   timeout=600)
    return xdg


def _library_folder(xdg: Path) -> Path:
    return next((xdg / "edgeopt" / "tflm").iterdir())


def _flip(p: Path, rng: random.Random) -> None:
    data = bytearray(p.read_bytes())
    if data:
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    p.write_bytes(bytes(data))


CACHE_KINDS = ("object_truncate", "object_flip", "object_link", "object_link_dir", "archive_truncate", "archive_flip",
               "archive_link", "index_truncate", "index_flip", "index_link", "index_paths", "index_types",
               "obj_dir_link", "planted_object", "mode_loose", "lock_link", "lock_fifo")


def mutate_tflm_cache(base: Path, dst: Path, sentinel: Path, rng: random.Random) -> str:
    _copy(base, dst)
    lib = _library_folder(dst)
    obj, archive, index = lib / "obj", lib / "libtflm.a", lib / "index.json"
    objects = sorted(p for p in obj.rglob("*.o"))
    victim = sentinel / "victim"
    kind = rng.choice(CACHE_KINDS)
    if kind == "object_truncate":
        p = rng.choice(objects)
        os.truncate(p, rng.randrange(p.stat().st_size))
    elif kind == "object_flip":
        _flip(rng.choice(objects), rng)
    elif kind == "object_link":
        p = rng.choice(objects)
        p.unlink()
        p.symlink_to(victim)
    elif kind == "object_link_dir":  # a folder of obj/ replaced by a link to the sentinel folder
        d = rng.choice(objects).parent
        shutil.rmtree(d)
        d.symlink_to(sentinel, target_is_directory=True)
    elif kind == "archive_truncate":
        os.truncate(archive, rng.randrange(archive.stat().st_size))
    elif kind == "archive_flip":
        _flip(archive, rng)
    elif kind == "archive_link":
        archive.unlink()
        archive.symlink_to(victim)
    elif kind == "index_truncate":
        os.truncate(index, rng.randrange(index.stat().st_size))
    elif kind == "index_flip":
        _flip(index, rng)
    elif kind == "index_link":
        index.unlink()
        index.symlink_to(victim)
    elif kind == "index_paths":  # recorded object names that leave obj/, with hashes that fail
        raw = json.loads(index.read_text())
        name = rng.choice(("../../../../../sentinel/victim", str(victim), "../libtflm.a", "x/../../index.json",
                           "a\x00b.o", "", "."))
        rel = os.path.relpath(victim, obj) if name.startswith("../../../../../") else name
        raw["objects"][rel] = "0" * 64 if rng.random() < 0.7 else hashlib.sha256(VICTIM).hexdigest()
        if rng.random() < 0.5:
            raw["archive_objects"] = [*raw.get("archive_objects", []), rel]
        index.write_text(json.dumps(raw))
    elif kind == "index_types":
        raw = json.loads(index.read_text())
        key = rng.choice(("objects", "archive", "archive_objects", "format"))
        raw[key] = rng.choice((None, 7, "x" * 100_000, [1, 2], {"a": None}, -1, 1e308))
        index.write_text(json.dumps(raw))
    elif kind == "obj_dir_link":
        shutil.rmtree(obj)
        obj.symlink_to(sentinel, target_is_directory=True)
    elif kind == "planted_object":
        (obj / "planted.o").write_bytes(b"\x7fELF planted")
    elif kind == "mode_loose":
        target = rng.choice((lib, obj, lib.parent, lib.parent.parent))
        target.chmod(rng.choice((0o777, 0o770, 0o702)))
    elif kind == "lock_link":
        (lib / ".lock").unlink(missing_ok=True)
        (lib / ".lock").symlink_to(victim)
    elif kind == "lock_fifo":
        (lib / ".lock").unlink(missing_ok=True)
        os.mkfifo(lib / ".lock")
    return kind


# --------------------------------------------------------------------------- searchdb


def base_search_out(workdir: Path) -> Path:
    """An OUT with search.db (one finished trial, the attributes edgeopt stores) and trials/0000 (its manifest and
    two artifacts). Built with the real Optuna storage; no build runs."""
    out = workdir / "search-base" / "out"
    if (out / "search.db").is_file():
        return out
    import optuna

    from edgeopt.pipeline.search.study import default_url
    from edgeopt.pipeline.search.trial import ARTIFACT_SHA256, MANIFEST_SHA256, trial_dir

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = trial_dir(out, 0)
    folder.mkdir(parents=True)
    arts = {"m.tflite": b"TFL3 artifact", "m.float.tflite": b"TFL3 baseline"}
    for name, data in arts.items():
        (folder / name).write_bytes(data)
    manifest = json.dumps({"artifacts": {n: {"sha256": hashlib.sha256(d).hexdigest()} for n, d in arts.items()}})
    (folder / "manifest.json").write_text(manifest)
    study = optuna.create_study(storage=default_url(out), study_name="edgeopt-search", directions=["minimize"])
    t = study.ask()
    t.set_user_attr(MANIFEST_SHA256, hashlib.sha256(manifest.encode()).hexdigest())
    t.set_user_attr(ARTIFACT_SHA256, hashlib.sha256(arts["m.tflite"]).hexdigest())
    t.set_user_attr("artifact", "m.tflite")
    t.set_user_attr("baseline_artifact", "m.float.tflite")
    t.set_user_attr("folder", str(folder))
    study.tell(t, 1.0)
    return out


SEARCH_KINDS = ("attr_path", "attr_huge", "attr_nul", "attr_type", "attr_folder", "trial_link", "trials_link",
                "manifest_paths", "artifact_link", "artifact_fifo", "manifest_huge", "db_bytes")


def mutate_search_out(base: Path, dst: Path, sentinel: Path, rng: random.Random) -> str:
    from edgeopt.pipeline.search.trial import ARTIFACT_SHA256, MANIFEST_SHA256

    _copy(base, dst)
    db, folder = dst / "search.db", dst / "trials" / "0000"
    victim = str(sentinel / "victim")
    kind = rng.choice(SEARCH_KINDS)

    def set_attr(key: str, value: object) -> None:
        with sqlite3.connect(db) as con:
            con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = ?", (json.dumps(value), key))

    def rewrite_manifest(artifacts: dict) -> None:
        data = json.dumps({"artifacts": artifacts}).encode()
        (folder / "manifest.json").write_bytes(data)
        set_attr(MANIFEST_SHA256, hashlib.sha256(data).hexdigest())  # the attacker writes the study too

    key = rng.choice(("artifact", "baseline_artifact", MANIFEST_SHA256, ARTIFACT_SHA256, "folder"))
    if kind == "attr_path":
        set_attr(key, rng.choice((victim, "../../sentinel/victim", os.path.relpath(victim, folder), "/etc/passwd")))
    elif kind == "attr_huge":
        set_attr(key, "a" * rng.choice((10_000, 1_000_000, 20_000_000)))
    elif kind == "attr_nul":
        set_attr(key, rng.choice(("m.tflite\x00", "\x00", "m\x00/../../x")))
    elif kind == "attr_type":
        set_attr(key, rng.choice((None, 5, 1e308, ["m.tflite"], {"m.tflite": 1}, True)))
    elif kind == "attr_folder":
        set_attr("folder", rng.choice((str(sentinel), victim, "/", "")))
    elif kind == "trial_link":  # trials/0000 a link to a valid copy in the sentinel's parent... pointing at the sentinel
        shutil.rmtree(folder)
        folder.symlink_to(sentinel, target_is_directory=True)
    elif kind == "trials_link":
        shutil.rmtree(dst / "trials")
        (dst / "trials").symlink_to(sentinel, target_is_directory=True)
    elif kind == "manifest_paths":
        name = rng.choice((os.path.relpath(victim, folder), victim, "sub/../../x", "a\x00b", "", ".", "m.tflite/x"))
        arts = json.loads((folder / "manifest.json").read_text())["artifacts"]
        arts[name] = {"sha256": hashlib.sha256(VICTIM).hexdigest()}
        if rng.random() < 0.5:
            set_attr("artifact", name)
            set_attr(ARTIFACT_SHA256, arts[name]["sha256"])
        rewrite_manifest(arts)
    elif kind == "artifact_link":
        p = folder / rng.choice(("m.tflite", "m.float.tflite", "manifest.json"))
        p.unlink()
        p.symlink_to(victim)
    elif kind == "artifact_fifo":
        p = folder / rng.choice(("m.tflite", "m.float.tflite", "manifest.json"))
        p.unlink()
        os.mkfifo(p)
    elif kind == "manifest_huge":
        arts = {f"a{i}": {"sha256": "0" * 64} for i in range(rng.choice((1000, 100_000)))}
        rewrite_manifest(arts)
    elif kind == "db_bytes":
        _flip(db, rng)
    return kind
