"""Arm Ethos-U NPUs: the int8 model compiled with Vela (a separate program), its operators split between the NPU
and the Cortex-M, its SRAM and flash, and Vela's cycle estimate per layer (vela.py; the result: result.py)."""
