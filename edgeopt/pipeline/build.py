"""`edgeopt build`: load -> prune -> cluster -> convert -> quantize -> validate -> benchmark -> report.

Everything is written into a staging folder inside --out and moved into place only
when the build is complete. Budgets are checked last; a broken budget still
writes the artifacts and the report (the CLI then exits 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeopt.atomic import Staging, prepare_output, write_bytes_atomic
from edgeopt.data.datasets import (
    Dataset,
    check_against_input,
    check_data_path,
    check_labels,
    load_dataset,
    sibling,
)
from edgeopt.data.tensors import (
    Batch,
    IOSpec,
    Units,
    batch_count,
    batch_first,
    batch_head,
    feed_unit,
    units_of,
)
from edgeopt.errors import BudgetViolation, EdgeoptError, InputError
from edgeopt.load.formats import check_model_path
from edgeopt.load.source import Source, open_source
from edgeopt.pipeline import manifest
from edgeopt.pipeline.artifacts import Artifacts, make_artifacts
from edgeopt.pipeline.compress import compress, compression_stages
from edgeopt.pipeline.reporting import BuildOutcome, assemble_report
from edgeopt.profiles import load_profile
from edgeopt.profiles.schema import OutputFormat, Profile, Scheme
from edgeopt.report import schema as rs
from edgeopt.vocabulary import AccuracyMetric, DeviceClass

if TYPE_CHECKING:
    from edgeopt.benchmark.protocol import BenchResult
    from edgeopt.firmware.run import FirmwareResult
    from edgeopt.mcu.report import McuReport
    from edgeopt.npu.result import NpuStage
    from edgeopt.validate.accuracy import AccuracyResult
    from edgeopt.validate.metrics import AccuracyTarget

Progress = Callable[[str], None]
NO_LABELS_NOTE = "eval data has no labels: top-1 not measured; agreement with the float model is reported"


@dataclass(frozen=True)
class BuildRequest:
    model: Path
    target: str
    out: Path
    calib: Path | None = None
    eval: Path | None = None
    train: Path | None = None  # fine-tuning data for pruning / clustering / QAT
    random_calibration: bool = False
    allow_no_finetune: bool = False  # prune without fine-tuning data
    unsafe_load: bool = False
    threads: int | None = None  # overrides the profile
    benchmark: bool = True
    remote: Any = None  # edgeopt.benchmark.remote.RemoteSpec: time artifacts on a device
    c_name: str = "g_model"  # C array name for MCU targets
    command_line: tuple[str, ...] = ()
    force: bool = False  # rebuild even when OUT/manifest.json shows the same inputs
    firmware: bool = False  # run the firmware stage even when the profile's [firmware] run is false
    firmware_samples: int = 8  # eval (else calibration) samples fed to the firmware
    tflm: Path | None = None  # the TFLM tree for the firmware stage (default: $EDGEOPT_TFLM)
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # --shape: (input name or "", dims) for symbolic dims
    profile: Profile | None = None  # used instead of the target's own (edgeopt search: a trial's choices applied)
    timing_lock: Path | None = None  # a file held locked while latency is measured (parallel search trials)
    metric: tuple[str, ...] = ()  # --metric: METRIC for every output, or NAME=METRIC; overrides [validate] metric


@dataclass(frozen=True)
class BuildResult:
    report: rs.Report
    out: Path
    files: tuple[Path, ...]
    violations: tuple[BudgetViolation, ...] = field(default=())
    skipped: bool = False  # OUT already held this exact build (manifest.json); nothing was rebuilt

    @property
    def ok(self) -> bool:
        """The report's verdict: every budget met and, with a firmware stage, its output bit-exact (one rule, in
        pipeline.reporting); a firmware mismatch breaks no budget, so `not violations` would call it ok."""
        return self.report.ok

    def failures(self) -> tuple[str, ...]:
        """Why the build is not ok, one phrase each: the broken budgets, a firmware output that differs."""
        fw = self.report.stages.firmware
        mismatch = () if fw is None or fw.bit_exact else (f"firmware output {fw.vs_host_tflm.description}",)
        return (*(v.describe() for v in self.violations), *mismatch)


def _noop(_: str) -> None:
    return None


def build(req: BuildRequest, progress: Progress = _noop) -> BuildResult:
    time.perf_counter()
    resolved = load_profile(req.target)
    if req.profile is not None:
        from edgeopt.profiles.loader import with_profile

        resolved = with_profile(resolved, req.profile)
    profile = resolved.profile
    _check_paths(req)  # regular files of a known kind, before anything hashes or reads them
    _check_outputs(req, profile)  # no artifact may replace an input
    if req.firmware and profile.device_class is not DeviceClass.EMBEDDED_MCU:
        msg = (f"--firmware builds a Cortex-M image, but target {profile.name!r} is {profile.device_class.value}; "
               "use an embedded-mcu target (edgeopt targets list) or drop --firmware")
        raise InputError(msg)
    if profile.npu is not None:
        from edgeopt.npu.vela import vela_version

        vela_version()  # Vela missing: exit 2 with the pip command, before any work
    if firmware_on(req, profile):
        _check_firmware(req, profile)  # emulator, toolchain, TFLM tree, cache folders: exit 2 before any work
    inputs = manifest.build_inputs(req, resolved)
    cached = None if req.force else manifest.up_to_date(req.out, inputs)
    if cached is not None and not set(planned_outputs(req, profile)[:-1]) <= set(cached[0].get("artifacts", ())):
        cached = None  # written by an edgeopt that did not write every output (e.g. report.html): rebuild
    unchanged = None if cached is None else _unchanged(req.out, *cached)
    if unchanged is not None:
        return unchanged
    if profile.qat is not None and req.train is None and sibling(req.model, "train") is None \
            and req.model.suffix.lower() not in (".onnx", ".tflite"):  # those: refused as Keras-only in body
        from edgeopt.pipeline.qat_stage import check_qat_inputs

        check_qat_inputs(profile, None)  # refused before TensorFlow loads
    from edgeopt import confine

    sandboxed = confine.enabled()
    if sandboxed:
        confine.require()  # no Landlock: exit 2 naming the way out, before any work
    out = prepare_output(req.out)
    with Staging(out) as stage, _staging_paths_hidden(stage):  # a failure from here on removes an --out it created
        done = _run_body(req, resolved, stage, progress, sandboxed)
        report, violations, names = done.report, done.violations, list(done.names)
        names.append(manifest.write(stage, inputs, names, violations, req.command_line, manifest.tools_of(report)))
        files = stage.commit(names)  # manifest.json last: it only ever describes complete files
    return BuildResult(report, out, tuple(files), violations)


@dataclass(frozen=True)
class BodyResult:
    """What the model-side of a build hands back: the report and the staged files to commit."""

    report: rs.Report
    names: tuple[str, ...]
    violations: tuple[BudgetViolation, ...]


def _run_body(req: BuildRequest, resolved: Any, stage: Staging, progress: Progress, sandboxed: bool) -> BodyResult:
    """The model's side of the build: in a confined child (edgeopt.sandbox) that may write only the staging
    folder, or here with EDGEOPT_SANDBOX=off."""
    if not sandboxed:
        return body(req, resolved, stage.dir, progress)
    from edgeopt.sandbox.runner import Job, call

    writable = [stage.dir]
    if req.timing_lock is not None:
        import os

        from edgeopt.atomic import open_lock_file

        os.close(open_lock_file(Path(req.timing_lock)))  # exists (never through a planted link) before it is allowed
        writable.append(Path(req.timing_lock))
    job = Job(target="edgeopt.pipeline.build:body", kwargs={"req": req, "resolved": resolved, "stage_dir": stage.dir},
              result_type=BodyResult, writable=tuple(writable), network=req.remote is not None,
              services={"firmware": lambda payload: _firmware_service(req, resolved.profile, stage, payload)})
    return call(job, progress)  # type: ignore[no-any-return]



def _floors_under_compression(target: AccuracyTarget, profile: Profile, source: Source,
                              notes: list[str]) -> AccuracyTarget:
    """Pruning, clustering, sparsity and QAT change the function by design (a 50 % prune with QAT measured 8 dB
    against the dense model while top-1 held): the SNR/cosine floors are then not checked beside an output's own
    metric; max_accuracy_drop decides, and the collapse check stays. An output scored by snr/cosine keeps its budget."""
    compressing = bool(compression_stages(profile)) or profile.qat is not None or source.qat_model is not None
    if not compressing or (target.min_snr_db is None and target.min_cosine is None):
        return target
    notes.append("the accuracy floors (min_snr_db, min_cosine) are not checked beside each output's own metric: "
                 "compression changes the outputs by design, so max_accuracy_drop decides (an int8 output that "
                 "collapses still fails); to check an output's SNR, score it by snr ([validation] metric)")
    return replace(target, min_snr_db=None, min_cosine=None)

def body(req: BuildRequest, resolved: Any, stage_dir: Path, progress: Progress | None = None) -> BodyResult:
    """Load the model, compress, convert, quantize, validate, benchmark, verify, report: every step that runs
    the model's own code. `progress` None: report through the sandbox channel."""
    from edgeopt.sandbox import channel

    if progress is None:
        def progress(text: str) -> None:
            channel.send({"t": "progress", "text": text})
    started = time.perf_counter()
    profile = resolved.profile
    accuracy_control = profile.partial is not None and profile.partial.accuracy_control
    keep_float_only = profile.partial is not None and not accuracy_control and bool(profile.partial.keep_float)
    stage = Staging.adopt(req.out, stage_dir)
    progress("loading the model")  # at once: importing TensorFlow for a Keras model takes seconds
    if profile.convert.format is OutputFormat.TFLITE and req.model.suffix.lower() not in (".onnx", ".pt2", ".tflite"):
        from edgeopt.convert.isolated import prewarm

        prewarm()  # the converter's child imports TensorFlow while this process loads the model
    # loading a Keras file or SavedModel is a timed phase inside load_keras (after TensorFlow's import)
    source = open_source(req.model, req.unsafe_load, work_dir=_private_folder(stage, "_source"))
    _check_format_fits(source, profile)
    notes: list[str] = [f"the model is {source.origin}; the float reference is that ONNX model"] if source.origin else []
    sizes = _input_sizes(req, source)  # --shape for every input of an ONNX model (the TFLite conversion's sizes)
    given_shape = _given_shape(req, source, sizes)  # --shape checked against the model: exit 2 before any work
    calib, calib_source = _calibration(req, source, profile, notes, sizes)
    evalset = _dataset(req.eval, req.model, "eval", source)
    train = _dataset(req.train, req.model, "train", source)
    from edgeopt.pipeline.qat_stage import check_qat_inputs

    check_qat_inputs(profile, train)  # [qat] without labelled training data is bad input, found before any work
    from edgeopt.validate.metrics import metric_setting, resolve_metrics, small_eval_note, target_for

    setting = metric_setting(req.metric) if req.metric else profile.validation.metric
    # without eval data nothing is scored, but a metric that cannot fit an output is still bad input
    metrics = resolve_metrics(setting, source.outputs, evalset is None or evalset.y is not None)
    target = target_for(source.outputs, metrics, profile.budgets)
    if accuracy_control and evalset is None:
        notes.append("accuracy control ([partial]) was skipped: it needs eval data (--eval or NAME.eval.npz)")
    if keep_float_only and evalset is None:
        notes.append("[partial] keep_float was not applied: choosing the ops it names needs eval data (--eval or "
                     "NAME.eval.npz); plain int8 was kept")
    with channel.phase("the float model's outputs on the eval data"):
        reference = None if evalset is None else source.predict(evalset.batch)
    if reference is not None:  # auto asks the float outputs whether an (N, k) output holds probabilities
        metrics = resolve_metrics(setting, source.outputs, evalset is None or evalset.y is not None, reference)
        target = target_for(source.outputs, metrics, profile.budgets)
    target = _floors_under_compression(target, profile, source, notes)
    if evalset is not None and evalset.y is None and any(m is AccuracyMetric.AGREEMENT for m in metrics):
        notes.append(NO_LABELS_NOTE)
    if evalset is not None and (small := small_eval_note(evalset.count, target)):
        notes.append(small)
    model = source.keras_model
    compressed = None
    if model is not None and (enabled := compression_stages(profile)):
        progress(" and ".join(enabled))
        compressed = compress(model, profile, train, evalset, req.allow_no_finetune)
        model = compressed.model
    qat_model, qat_info = source.qat_model, None
    if model is not None and source.qat_model is None and profile.qat is not None:
        from edgeopt.pipeline.qat_stage import qat_direct, qat_report, run_qat

        if qat_direct(profile) and train is not None:
            progress("quantization-aware training")
            cluster = compressed.cluster if compressed is not None else None
            clustered = tuple(c.layer for c in cluster.layers) if cluster is not None else ()
            trained = run_qat(model, profile, train, evalset, clustered)
            qat_model, qat_info = trained.model, qat_report(trained, "direct")
            if compressed is not None and compressed.steps:
                compressed = replace(compressed, steps=(*compressed.steps, rs.CompositionStep(
                    stage="qat", params=int(model.count_params()), accuracy=trained.qat_accuracy)))
    progress("converting and quantizing")
    shapes = _data_shapes(source, calib, evalset, notes, given_shape) if req.benchmark else ()
    measure = (lambda paths: _time(list(paths), _bench_settings(profile, req, shapes, quick=True), req)) \
        if req.benchmark else None
    arts = make_artifacts(source, model, profile, calib, evalset, reference, stage, measure, train, qat_model,
                          target, sizes)
    notes.extend(arts.notes)
    if arts.note:
        notes.append(arts.note)
    progress("validating accuracy")
    accuracy = _accuracy(source, stage, arts, evalset, reference, target)
    latency = None
    if req.benchmark:
        progress("benchmarking" + (f" on {req.remote.host}" if req.remote is not None else ""))
        latency = _latency(stage, arts, profile, req, shapes)
        notes.extend(_refusals(latency, (arts.baseline, arts.optimized)))
    extra_files: list[str] = []
    mcu = None
    if profile.device_class is DeviceClass.EMBEDDED_MCU and profile.convert.format is OutputFormat.TFLITE:
        progress("verifying in TFLite Micro")
        mcu, extra_files = _mcu(stage, arts, profile, req, evalset, calib)
    npu = None
    if mcu is not None and profile.npu is not None:
        progress(f"compiling for the NPU with Vela ({profile.npu.accelerator})")
        npu = _npu(stage, arts, profile)
        extra_files.append(npu.compiled_model)
        notes.append(f"Ethos-U: {npu.operators.npu} of {npu.operators.total} operators run on the {npu.accelerator} "
                     f"(Vela's estimate: {npu.latency_ms:.4g} ms for them); the device latency and energy figures "
                     "are the Cortex-M alone running the whole model")
    energy = None
    if mcu is None:  # an MCU's figure comes with its check (device estimate); here: this host or the remote device
        from edgeopt.energy.artifact import artifact_energy

        energy = artifact_energy(stage.path(arts.optimized), profile,
                                 None if latency is None else latency[1].latency.p50, remote=req.remote is not None,
                                 threads=profile.runtime.threads or 1, progress=progress,
                                 emulated=latency is not None and latency[1].emulated)
    firmware: FirmwareResult | None = None
    firmware_violations: tuple[BudgetViolation, ...] = ()
    if mcu is not None and firmware_on(req, profile):
        progress("building the firmware and running it under QEMU")
        firmware, firmware_violations = _firmware(stage, arts, profile, req, evalset, calib)
        if firmware is not None:
            notes.extend(firmware.library.notes)  # what the TFLM cache check found and rebuilt
    report = assemble_report(BuildOutcome(
        model=req.model, resolved=resolved, source=source, calibration=calib_source,
        calibration_samples=0 if calib is None else batch_count(calib, _units(source)),
        eval_data=None if evalset is None else evalset.path, folder=stage.dir, artifacts=arts, accuracy=accuracy,
        latency=latency, compressed=compressed, mcu=mcu, qat=qat_info or arts.qat, firmware=firmware,
        firmware_violations=firmware_violations, notes=tuple(notes),
        threads_from="the profile's [runtime] threads" if req.threads is None else "--threads",
        build_seconds=time.perf_counter() - started,
        data_sample_shape=given_shape or _sample_shape(calib, evalset),
        data_origin="--shape" if given_shape else "eval" if evalset is not None else "calibration", energy=energy,
        target=target, npu=npu))
    violations = tuple(BudgetViolation(b.name, b.limit, b.actual or 0.0, b.unit) for b in report.budgets if b.ok is False)
    from edgeopt.report.html import build_page
    from edgeopt.report.render import to_markdown

    write_bytes_atomic(stage.path("report.md"), to_markdown(report).encode())
    write_bytes_atomic(stage.path("report.html"), build_page(report).encode())
    write_bytes_atomic(stage.path("report.json"), (report.model_dump_json(indent=2) + "\n").encode())
    names = [arts.optimized, arts.baseline, *extra_files, "report.md", "report.html", "report.json"]
    return BodyResult(report, tuple(names), violations)


def _private_folder(stage: Staging, name: str) -> Path:
    """A folder inside the staging folder for intermediate files (never committed: they go with the staging)."""
    folder = stage.dir / name
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


@contextmanager
def _staging_paths_hidden(stage: Staging) -> Iterator[None]:
    """An error from a stage names a file by its artifact name, never by the private staging folder."""
    try:
        yield
    except EdgeoptError as exc:
        if exc.args and isinstance(exc.args[0], str):
            text = exc.args[0]
            for folder in {str(stage.dir), str(stage.dir.resolve())}:
                text = text.replace(f"{folder}/_work/", "").replace(f"{folder}/", "")
            exc.args = (text, *exc.args[1:])
        raise


def _unchanged(out: Path, data: dict[str, Any], files: list[Path]) -> BuildResult | None:
    """The build already in OUT, or None when its report.json is of another schema version or unreadable
    (rebuild it)."""
    try:
        report = rs.Report.model_validate_json((Path(out) / "report.json").read_text("utf-8"))
    except (OSError, ValueError):  # pydantic's ValidationError and UnicodeDecodeError are ValueErrors
        return None
    violations = tuple(BudgetViolation(v["name"], v["limit"], v["actual"], v["unit"])
                       for v in data.get("budget_violations", ()))
    return BuildResult(report, Path(out).resolve(), tuple(files), violations, skipped=True)


def _check_paths(req: BuildRequest) -> None:
    check_model_path(req.model)
    for given, role in ((req.calib, "calibration"), (req.eval, "eval"), (req.train, "train")):
        if given is not None:
            check_data_path(given, role)


def planned_outputs(req: BuildRequest, profile: Profile) -> list[str]:
    """Every file name a build writes into OUT (manifest last)."""
    from edgeopt.pipeline.artifacts import artifact_names

    names = list(artifact_names(req.model, profile.convert.format))
    if profile.device_class == DeviceClass.EMBEDDED_MCU:
        names += [f"{req.c_name}.h", f"{req.c_name}.cc"]
    if profile.npu is not None:
        from edgeopt.npu.vela import compiled_name

        names.append(compiled_name(names[1]))  # beside the optimized artifact
    return names + ["report.md", "report.html", "report.json", manifest.MANIFEST]


def _check_outputs(req: BuildRequest, profile: Profile) -> None:
    """Refuse a build whose artifact would replace (or be a hard link of) an input, before any work."""
    import os

    inputs = [(req.model, "model"), *((p, role) for p, role in (
        (req.calib or sibling(req.model, "calibration"), "calibration data"),
        (req.eval or sibling(req.model, "eval"), "eval data"),
        (req.train or sibling(req.model, "train"), "train data")) if p is not None)]
    ids = {}
    for path, role in inputs:
        try:
            st = Path(path).stat()
        except (OSError, ValueError):
            continue
        ids[(st.st_dev, st.st_ino)] = (path, role)
    model_dir = Path(req.model).resolve() if Path(req.model).is_dir() else None
    for name in planned_outputs(req, profile):
        dst = Path(req.out) / name
        try:
            st = os.lstat(dst)
        except (OSError, ValueError):
            continue
        hit = ids.get((st.st_dev, st.st_ino))
        if hit is None and model_dir is not None and model_dir in dst.resolve().parents:
            hit = (req.model, "model")
        if hit is not None:
            msg = (
                f"--out {req.out}: the build would write {name} over the {hit[1]} {hit[0]}; choose "
                             "another --out, e.g. --out build"
            )
            raise InputError(msg)


def _check_format_fits(source: Source, profile: Profile) -> None:
    from edgeopt.convert.registry import converter_for

    converter = converter_for(profile.convert.format)
    if source.tflite_path is not None and profile.convert.format is not OutputFormat.TFLITE:
        msg = (f"profile '{profile.name}' makes {converter.label}; a float .tflite builds only for a TFLite profile "
               "such as mobile-cpu or embedded-mcu (edgeopt targets list)")
        raise InputError(msg)
    if source.keras_model is None and source.tflite_path is None and not converter.from_onnx \
            and converter.onnx_to_float is None:
        msg = (
            f"profile '{profile.name}' makes {converter.label}, which needs a Keras/TensorFlow model; "
                         "an ONNX model can target an ONNX profile such as edge-server"
        )
        raise InputError(msg)
    if source.qat_model is not None and (profile.prune.ratio or profile.prune.macs_reduction or profile.cluster is not None
                                         or profile.sparsity is not None):
        msg_0 = (
            f"{source.path} was trained with fake quantization (edgeopt qat); prune/cluster the float model "
                         "first, then run QAT (or use a profile without [prune]/[sparsity]/[cluster])"
        )
        raise InputError(msg_0)
    asks = [name for name, on in (("[prune]", bool(profile.prune.ratio or profile.prune.macs_reduction)),
                                  ("[sparsity]", profile.sparsity is not None), ("[cluster]", profile.cluster is not None),
                                  ("[qat]", profile.qat is not None)) if on]
    if source.keras_model is None and asks:
        kind = "an ONNX model" if source.format.value == "onnx" else "a .tflite model"
        msg = (
            f"profile '{profile.name}' asks for {', '.join(asks)}, which needs a Keras model; {kind} can only be "
            f"quantized (use a profile without {', '.join(asks)}, or build from the Keras model)"
        )
        raise InputError(msg)


def _units(source: Source) -> Units:
    """Rows per sample of each model input (data.tensors.feed_unit)."""
    return units_of([s.shape for s in source.inputs] or [source.input_shape])


def _calibration(req: BuildRequest, source: Source, profile: Profile, notes: list[str],
                 sizes: dict[str, tuple[int, ...]]) -> tuple[Batch | None, str]:
    needs = profile.quantize.scheme in (Scheme.INT8, Scheme.INT16X8) and source.qat_model is None  # QAT: trained scales
    path = req.calib or sibling(req.model, "calibration")
    n = profile.quantize.calibration_samples
    if needs and len(source.inputs) <= 1 and source.input_dtype not in ("float32", "float16", "float64"):
        msg = (
            f"{req.model}: the model's input is {source.input_dtype} (token ids, e.g. an Embedding); "
                         f"scheme '{profile.quantize.scheme}' calibrates with float samples, which such a model "
                         "cannot take: use a float16 profile, or a model whose input is float"
        )
        raise InputError(msg)
    if path is not None:
        ds = check_against_input(_load(path, "calibration", source), source.input_shape, "calibration", source.inputs)
        units = _units(source)
        if (have := batch_count(ds.batch, units)) < n:
            notes.append(f"calibration used all {have} samples given (profile asks for {n})")
        return batch_head(ds.batch, n, units), str(path)
    if not needs:
        return None, "none"
    if not req.random_calibration:
        msg = (
            f"scheme '{profile.quantize.scheme}' needs calibration data: give --calib data.npz "
                         f"(array x), put {req.model.stem}.calib.npz next to the model, or pass --random-calibration"
        )
        raise InputError(msg)
    specs = source.inputs or (IOSpec("input", source.input_shape, source.input_dtype),)
    specs = tuple(IOSpec(s.name, (s.shape[0], *sizes[s.name][1:]), s.dtype) if s.name in sizes else s for s in specs)
    for spec in specs:
        if any(d is None for d in spec.shape[1:]):
            dims = ", ".join("?" if d is None else str(d) for d in spec.shape[1:])
            fix = (f", or the size: --shape {spec.name}=1x{'x'.join('?' if d is None else str(d) for d in spec.shape[1:])}"
                   if source.onnx_path is not None else ", or export the model with a fixed input shape")
            msg = (
                f"{req.model}: the input shape (N, {dims}) has dynamic dimensions, so random calibration "
                f"does not know what size to make: give --calib data of the size you deploy{fix}"
            )
            raise InputError(msg)
    rng = np.random.default_rng(0)
    arrays = {}
    for spec in specs:
        rows = min(n, 100) * max(feed_unit(spec.shape), 1)  # whole samples of a fixed-size input
        shape = (rows, *(int(d) for d in spec.shape[1:] if d is not None))
        kind = np.dtype(spec.dtype).kind
        arrays[spec.name] = rng.integers(0, 3, shape, endpoint=True).astype(spec.dtype) if kind in "iu" else \
            rng.random(shape, dtype=np.float32)
    return (next(iter(arrays.values())) if len(arrays) == 1 else arrays), "random"


def _dataset(given: Path | None, model: Path, role: str, source: Source) -> Dataset | None:
    path = given or sibling(model, role)
    if path is None:
        return None
    ds = check_against_input(_load(path, role, source), source.input_shape, role, source.inputs)
    return check_labels(ds, source.output_width, role)


def _load(path: Path, role: str, source: Source) -> Dataset:
    """`role` data for the model's inputs; an ONNX model's data saved channels-last (N, H, W, C) for its
    (N, C, H, W) input is the one line that says so and how to transpose (edgeopt.data.onnx_samples), instead of
    a plain shape mismatch."""
    from edgeopt.errors import DataError

    try:
        return load_dataset(path, role, source.input_shape, source.inputs)
    except DataError:
        if source.onnx_path is None:
            raise
        try:
            loose = load_dataset(path, role)  # the arrays as they are, to tell a channels-last layout
        except DataError:
            loose = None  # (several arrays read without the model's inputs): the first error stands
        if loose is not None:
            _channels_first(loose, source)
        raise


def _channels_first(ds: Dataset, source: Source) -> None:
    from edgeopt.data.onnx_samples import check_onnx_samples, looks_channels_last

    arrays = {source.inputs[0].name: ds.batch} if isinstance(ds.batch, np.ndarray) else dict(ds.batch)
    if any(s.name in arrays and looks_channels_last(s.shape, tuple(arrays[s.name].shape)) for s in source.inputs):
        try:
            check_onnx_samples(source.inputs, arrays)
        except EdgeoptError as exc:
            exc.args = (f"{ds.path}: {exc.args[0]}",)
            raise


def _accuracy(source: Source, stage: Staging, arts: Artifacts, evalset: Dataset | None,
              reference: list[np.ndarray] | None, target: AccuracyTarget) -> tuple[AccuracyResult, AccuracyResult] | None:
    if evalset is None or reference is None:
        return None
    from edgeopt.validate.accuracy import compare, predict_outputs

    def score(name: str) -> AccuracyResult:
        outs = predict_outputs(stage.path(name), evalset.batch, source.outputs, layout=arts.layout)
        return compare(outs, reference, evalset.y, source.reference_name, target=target)

    base = score(arts.baseline)
    opt = arts.optimized_accuracy or score(arts.optimized)
    return base, opt


def _sample_shape(calib: Batch | None, evalset: Dataset | None) -> tuple[int, ...] | None:
    """One eval (else calibration) sample's shape (the first input's), batch 1."""
    x = evalset.x if evalset is not None else (None if calib is None else batch_first(calib))
    return None if x is None else (1, *(int(d) for d in x.shape[1:]))


def _input_sizes(req: BuildRequest, source: Source) -> dict[str, tuple[int, ...]]:
    """--shape by input name for an ONNX model, checked against all its inputs as `bench` checks them (a name it
    does not have, another rank or a contradicted fixed dimension is InputError); {} for other models."""
    if not req.shapes or source.onnx_path is None or not source.inputs:
        return {}
    from edgeopt.runtime.base import TensorInfo
    from edgeopt.runtime.shapes import resolve_inputs

    given = {source.inputs[0].name if name == "" else name for name, _ in req.shapes}
    infos = tuple(TensorInfo(name=s.name, shape=tuple(-1 if d is None else int(d) for d in s.shape), dtype=s.dtype)
                  for s in source.inputs)
    return {i.name: tuple(i.shape) for i in resolve_inputs(infos, dict(req.shapes)) if i.name in given}


def _given_shape(req: BuildRequest, source: Source, sizes: dict[str, tuple[int, ...]]) -> tuple[int, ...] | None:
    """The --shape dims of the model's input, checked as `bench` and `inspect` check them (a name the model does
    not have, another rank or a contradicted fixed dimension is InputError), or None without --shape."""
    if not req.shapes:
        return None
    if sizes or source.onnx_path is not None and len(source.inputs) > 1:  # checked whole by _input_sizes
        return sizes.get(source.inputs[0].name)
    from edgeopt.runtime.base import TensorInfo
    from edgeopt.runtime.shapes import resolve_inputs

    name = source.input_name or "input"
    shapes = dict(req.shapes)
    if source.keras_model is not None and len(source.inputs) == 1:  # messages name the Keras input; both names work
        keras_name = str(getattr(source.keras_model.inputs[0], "name", "") or "")
        if keras_name and keras_name != name:
            if name in shapes:
                shapes[keras_name] = shapes.pop(name)
            name = keras_name
    info = TensorInfo(name=name, shape=tuple(-1 if d is None else int(d) for d in source.input_shape),
                      dtype=source.input_dtype)
    return resolve_inputs((info,), shapes)[0].shape


def _data_shapes(source: Source, calib: Batch | None, evalset: Dataset | None,
                 notes: list[str], given: tuple[int, ...] | None = None) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Sizes for the latency stage when the model's input has symbolic dims beyond the batch: --shape, else one
    sample of the eval data, else of the calibration data (what the model is used on), never a silent 1."""
    dims = source.input_shape[1:]
    if given is not None:
        if any(d is None for d in dims):
            notes.append(f"latency measured at input shape {'x'.join(map(str, given))} (from --shape; the model's "
                         f"input is {['?' if d is None else d for d in source.input_shape]})")
        return (("", given),)  # the only input, whatever the converter named it in the artifacts
    if all(d is not None for d in dims):
        return ()
    x, origin = (evalset.x, "eval data") if evalset is not None else \
        (None if calib is None else batch_first(calib), "calibration data")
    if x is None:
        from edgeopt.runtime.shapes import shape_hint

        name = source.input_name or (source.inputs[0].name if source.inputs else "input")
        notes.append(f"latency measured with the input's symbolic dimensions as 1 ({list(source.input_shape)}): "
                     f"no data gave their size; give eval data or "
                     f"{shape_hint([(name, tuple(-1 if d is None else d for d in source.input_shape))])}")
        return ()
    shape = (1, *(int(d) for d in x.shape[1:]))
    notes.append(f"latency measured at input shape {'x'.join(map(str, shape))} (from the {origin}; the model's "
                 f"input is {['?' if d is None else d for d in source.input_shape]})")
    return (("", shape),)


def _bench_settings(profile: Profile, req: BuildRequest, shapes: tuple[tuple[str, tuple[int, ...]], ...] = (),
                    quick: bool = False) -> Any:
    """The profile's protocol; `quick`: a shorter one for choosing between candidate artifacts."""
    from edgeopt.benchmark.protocol import BenchSettings

    b = profile.benchmark
    return BenchSettings(shapes=shapes, threads=profile.runtime.threads if req.threads is None else req.threads,
                         xnnpack=profile.runtime.xnnpack, graph_optimization=profile.runtime.graph_optimization,
                         warmup_runs=b.warmup_runs, warmup_seconds=min(b.warmup_seconds, 0.25) if quick else b.warmup_seconds,
                         runs=min(b.runs, 30) if quick else b.runs, min_seconds=min(b.min_seconds, 0.5) if quick else b.min_seconds)


def _time(paths: list[Path], settings: Any, req: BuildRequest) -> list[BenchResult]:
    """Time `paths` interleaved, locally or on the --remote device; with `req.timing_lock`, only while no other
    process holding that lock times anything."""
    from edgeopt.benchmark.exclusive import exclusive

    with exclusive(req.timing_lock):
        if req.remote is not None:
            from edgeopt.benchmark.remote import run_remote

            return list(run_remote(paths, settings, req.remote))
        from edgeopt.benchmark.protocol import run_interleaved

        return run_interleaved(paths, settings)


def _latency(stage: Staging, arts: Artifacts, profile: Profile, req: BuildRequest,
             shapes: tuple[tuple[str, tuple[int, ...]], ...]) -> tuple[BenchResult, BenchResult]:
    results = _time([stage.path(arts.baseline), stage.path(arts.optimized)], _bench_settings(profile, req, shapes), req)
    return results[0], results[1]


def _refusals(results: tuple[BenchResult, BenchResult], names: tuple[str, str]) -> list[str]:
    from edgeopt.runtime.litert import XNNPACK_REFUSED

    return [f"XNNPACK refused to prepare {name} (often an int8 scale from an activation that was constant on the "
            "calibration data); its latency was measured on LiteRT's builtin kernels"
            for r, name in zip(results, names, strict=True) if r.delegate == XNNPACK_REFUSED]


def _mcu(stage: Staging, arts: Artifacts, profile: Profile, req: BuildRequest, evalset: Dataset | None,
         calib: Batch | None) -> tuple[McuReport, list[str]]:
    from edgeopt.mcu.deliver import deliver

    samples = batch_head(evalset.batch, 32) if evalset is not None else (batch_head(calib, 32) if calib is not None else None)
    if samples is not None and arts.layout is not None:
        samples = arts.layout.feed(samples)  # in the artifact's layout (NHWC after onnx2tf)
    source = "eval data" if evalset is not None else ("calibration data" if calib is not None else "")
    layouts: tuple[tuple[str | None, ...], tuple[str | None, ...]] = ((), ())
    if arts.layout is not None:
        layouts = arts.layout.c_layouts(stage.path(arts.optimized))
    report = deliver(stage.path(arts.optimized), profile, samples, stage.dir, name=req.c_name, sample_source=source,
                     layouts=layouts)
    files = [Path(p).name for p in (report.c_header, report.c_source) if p]
    return report, files


def _npu(stage: Staging, arts: Artifacts, profile: Profile) -> NpuStage:
    """Vela compiles the int8 artifact for the profile's Ethos-U; the compiled model is kept beside it."""
    from edgeopt.npu.vela import compile_for_npu, compiled_name

    assert profile.npu is not None
    return compile_for_npu(stage.path(arts.optimized), profile.npu, stage.path(compiled_name(arts.optimized)),
                           profile.name)


def firmware_on(req: BuildRequest, profile: Profile) -> bool:
    """The firmware stage runs for an MCU profile when its [firmware] run is true or --firmware asks for it."""
    return profile.device_class is DeviceClass.EMBEDDED_MCU and (req.firmware or profile.firmware.run)


def _check_firmware(req: BuildRequest, profile: Profile) -> None:
    from edgeopt.firmware.cores import core_spec, emulator
    from edgeopt.firmware.library import LibraryCache
    from edgeopt.firmware.toolchain import find_qemu, find_toolchain
    from edgeopt.firmware.tree import find_tree

    spec = core_spec(profile.mcu.core, profile.name)
    emulator(spec, profile.name)
    tc = find_toolchain()
    find_qemu()
    LibraryCache(spec, tc, find_tree(req.tflm))  # its folders are private, or exit 2 before any work


def _firmware(stage: Staging, arts: Artifacts, profile: Profile, req: BuildRequest, evalset: Dataset | None,
              calib: Batch | None) -> tuple[FirmwareResult | None, tuple[BudgetViolation, ...]]:
    """The same image `edgeopt mcu run` builds, on the built int8 artifact; an image that does not fit the board
    is a broken budget (reported with the ELF numbers, exit 3), not a failed build. In the sandbox the parent
    builds and runs it (the compile cache is outside what the confined child may write)."""
    from edgeopt.sandbox import channel

    n = req.firmware_samples
    samples = evalset.x[:n] if evalset is not None else (batch_first(calib)[:n] if calib is not None else None)
    if samples is not None and arts.layout is not None:
        samples = np.asarray(batch_first(arts.layout.feed(samples)))  # in the artifact's layout (NHWC after onnx2tf)
    source = "eval data" if evalset is not None else ("calibration data" if calib is not None else "")
    if not channel.confined():
        return _run_firmware(stage.path(arts.optimized), profile, req, samples, source)
    name = None
    if samples is not None:
        name = "_tmp/firmware-samples.npy"
        np.save(stage.path(name), np.ascontiguousarray(samples), allow_pickle=False)
    answer = channel.ask("firmware", {"artifact": arts.optimized, "samples": name, "source": source})
    from pydantic import TypeAdapter

    from edgeopt.firmware.run import FirmwareResult

    result = None if answer["result"] is None else TypeAdapter(FirmwareResult).validate_python(answer["result"])
    return result, tuple(BudgetViolation(**v) for v in answer["violations"])


def _run_firmware(artifact: Path, profile: Profile, req: BuildRequest, samples: np.ndarray | None,
                  source: str) -> tuple[FirmwareResult | None, tuple[BudgetViolation, ...]]:
    from edgeopt.errors import BudgetExceededError
    from edgeopt.firmware.run import run_firmware

    try:
        result = run_firmware(artifact, profile, tflm=req.tflm, samples=samples, sample_source=source,
                              sample_count=req.firmware_samples)
    except BudgetExceededError as exc:
        return None, exc.violations
    return result, ()


def _firmware_service(req: BuildRequest, profile: Profile, stage: Staging, payload: dict[str, Any]) -> dict[str, Any]:
    """The parent's half of the firmware stage: the files the child names must be regular files inside the
    staging folder (never a link it planted)."""
    import dataclasses

    from pydantic import TypeAdapter

    from edgeopt.firmware.run import FirmwareResult

    def staged(name: object) -> Path:
        path = stage.path(str(name))
        if path.is_symlink() or not path.is_file() or path.parent.resolve() != path.parent:
            msg = f"the sandboxed build named {name!r}, which is not a staged file"
            raise InputError(msg)
        return path

    samples = None
    if payload.get("samples") is not None:
        path = staged(payload["samples"])
        samples = np.load(path, allow_pickle=False)
    result, violations = _run_firmware(staged(payload["artifact"]), profile, req, samples, str(payload.get("source", "")))
    return {"result": None if result is None else TypeAdapter(FirmwareResult).dump_python(result, mode="json"),
            "violations": [dataclasses.asdict(v) for v in violations]}
