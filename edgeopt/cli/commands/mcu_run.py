"""`edgeopt mcu run MODEL.tflite --target BOARD`: the real firmware image on an emulated Cortex-M."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table

if TYPE_CHECKING:
    from edgeopt.firmware.run import FirmwareResult


def _kb(b: int) -> str:
    return f"{b / 1024:,.1f} KB"


def _frame_rows(r: FirmwareResult, lo: int, med: int, hi: int) -> list[list[str]]:
    if not r.stateful:
        return [["instructions / inference", f"{med:,}", f"min {lo:,}, max {hi:,} over {r.samples} samples (SysTick under -icount)"]]
    first = r.first_frame_instructions or 0
    table = r.device.variable_table_bytes
    return [
        ["stateful model", f"{r.resource_variables} resource variable(s)",
         f"{r.samples} consecutive frames, state carried" + (f"; allocator + variable table {table:,} B of the arena" if table else "")],
        ["instructions / frame", f"{med:,}", f"min {lo:,}, max {hi:,} over frames 2..{r.samples} (SysTick under -icount)"],
        ["instructions, frame 1", f"{first:,}", "includes CALL_ONCE's initialisation of the variables"],
    ]


def register(sub: typer.Typer) -> None:
    @sub.command("run")
    def run_cmd(
        model: Annotated[Path, typer.Argument(help="int8 .tflite model")],
        target: Annotated[str, typer.Option("--target", "-t", help="Board profile name or .toml path.")] = "embedded-mcu",
        data: Annotated[Path | None, typer.Option("--data", help="Samples .npz (x) or .npy fed to the firmware; default: random.")] = None,
        samples: Annotated[int | None, typer.Option("--samples", min=1, help="How many samples to run (default 8; a stateful model: 20 consecutive frames, state carried).")] = None,
        tflm: Annotated[Path | None, typer.Option("--tflm", help="Folder with the TFLM tree/ and device/ (default: $EDGEOPT_TFLM).")] = None,
        timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds the emulated firmware may run.")] = 600.0,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Keep the image (app.elf, app.map) and its sources here.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Compile the model into a Cortex-M image (TFLM + CMSIS-NN), run it under QEMU, compare with host TFLM and LiteRT.

        The firmware uses the model's own I/O types (reported when they differ from the profile's, as `mcu check` does).
        A stateful (streaming) model runs its samples as consecutive frames, state carried, each compared.
        """
        with handled(json_out):
            from edgeopt.firmware.run import run_firmware
            from edgeopt.profiles import load_profile

            sink = Sink(json_out)
            profile = load_profile(target).profile
            x, source = None, ""
            if data is not None:
                from edgeopt.data.datasets import load_dataset

                x, source = load_dataset(data, "sample").x, str(data)
            with sink.progress("building the firmware and running it under QEMU"):
                r = run_firmware(model, profile, tflm=tflm, samples=x, sample_source=source, sample_count=samples,
                                 timeout_s=timeout, out_dir=out)
            from edgeopt.energy import firmware_energy

            energy = firmware_energy(profile.energy, r.latency)

            def human(c):  # type: ignore[no-untyped-def]
                lo, med, hi = r.instructions()
                d, e = r.device, r.elf
                lat = r.latency
                lib = "cached" if r.library.cached else f"compiled {r.library.compiled} objects in {r.library.seconds:.0f} s"
                c.print(f"{r.model}  board={r.profile}  core={r.core}  qemu={r.machine}  TFLM library: {lib}")
                rows = [
                    ["flash (ELF)", _kb(e.flash_bytes), f"limit {_kb(r.flash_limit_bytes)}; " + ", ".join(f"{k} {_kb(v)}" for k, v in e.flash_split)],
                    ["RAM (ELF)", _kb(e.ram_bytes), f"limit {_kb(r.ram_limit_bytes)}; " + ", ".join(f"{k} {_kb(v)}" for k, v in e.ram_split)],
                    ["text / rodata / data / bss", f"{e.text:,} / {e.rodata:,} / {e.data:,} / {e.bss:,} B", ""],
                    ["arena, 32-bit target", f"{d.arena_bytes:,} B", f"exact (size - 1 fails: {'yes' if d.arena_below_fails else 'NO'}); "
                     f"TFLM arena_used_bytes {d.arena_used_bytes:,}"],
                    ["arena, host (64-bit)", f"{r.host_arena_bytes:,} B", f"reserved in the image: {d.arena_reserved_bytes:,} B"],
                    ["stack used", f"{d.stack_used_bytes:,} B", f"of {d.stack_reserved_bytes:,} B reserved"],
                    *_frame_rows(r, lo, med, hi),
                    ["latency, device estimate", f"{lat.median_ms:.3f} ms" if lat else "-",
                     f"estimate: x {lat.cpi:g} CPI / {lat.clock_mhz:g} MHz" if lat else "set [firmware] cpi and clock_mhz"],
                    ["vs host TFLM", "bit-exact" if r.vs_host_tflm.bit_exact else "DIFFERS", r.vs_host_tflm.describe()],
                    ["vs LiteRT", "bit-exact" if r.vs_litert.bit_exact else "differs", r.vs_litert.describe()],
                    ["I/O types", f"in {', '.join(r.io_types[0])}; out {', '.join(r.io_types[1])}",
                     "; ".join(r.io_findings) or "as the profile"],
                    ["QEMU run", f"{r.qemu_seconds:.1f} s", f"samples: {r.sample_source}"],
                ]
                c.print(table("Firmware on the emulated board", ["", "value", "note"], rows))
                c.print(f"I/O layout {r.io.origin} (g_model.h says the same):")
                for t in r.io.tensors:
                    c.print(f"  {t.describe()}")
                c.print(energy.describe())

            sink.result({**r.to_dict(), "energy": energy.to_dict()}, human)
            for note in r.library.notes:  # what the cache check found and rebuilt
                sink.warn(note)
            for finding in r.io_findings:
                sink.warn(f"{finding}; the firmware used the model's own types")
            if not r.vs_litert.bit_exact:
                sink.warn(f"firmware vs LiteRT: {r.vs_litert.describe()}")
            r.enforce()
