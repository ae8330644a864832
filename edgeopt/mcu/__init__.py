"""TFLite Micro delivery: verification, exact arena, C export, flash/RAM budgets.

    analysis/tflite_graph  ->  ops.py (TFLM op table)  +  integer.py (int8-only)
                           ->  arena.py (bisection; TFLM runs in worker.py, a child process)
                           ->  compare.py (TFLM vs LiteRT)  ->  budget.py  ->  report.py (McuReport)
                           ->  c_export.py (<name>.h / <name>.cc)
    check.py  runs the checks;  deliver.py  is what `edgeopt build` calls.

Nothing here imports TensorFlow.
"""

from edgeopt.mcu.deliver import deliver
from edgeopt.mcu.report import McuReport

__all__ = ["McuReport", "deliver"]
