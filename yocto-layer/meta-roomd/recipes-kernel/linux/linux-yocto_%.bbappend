# QEMU arm64 only: gpio-sim for roomd's qemu-virt board (roomd-qemu-gpio-sim creates the chip).
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI:append:qemuarm64 = " file://roomd-gpio-sim.cfg"
