"""Real firmware: the model compiled into a Cortex-M image with TFLite Micro + CMSIS-NN, run under QEMU.

One module per job, in the order a build uses them:
  cores.py      the Cortex-M cores we build for: compiler flags, device support, QEMU machine
  toolchain.py  find arm-none-eabi-* and qemu-system-arm (exit 2 with the apt-get line when missing)
  tree.py       the TFLM source tree (--tflm / $EDGEOPT_TFLM): checked, hashed
  library.py    the TFLM + CMSIS-NN static library per (core, flags, tree hash), cached and published atomically
  harness.py    the bare-metal main.cc and linker script around the model's g_model.cc/.h
  image.py      compile + link the image with the board's flash/RAM as memory regions
  elf.py        flash/RAM figures from the linked ELF (sections and symbols)
  qemu.py       run the image under QEMU with semihosting and -icount shift=0, confined (seccomp + Landlock)
  results.py    parse what the firmware reported; compare with host TFLM and LiteRT
  run.py        the facade: `edgeopt mcu run`
"""
