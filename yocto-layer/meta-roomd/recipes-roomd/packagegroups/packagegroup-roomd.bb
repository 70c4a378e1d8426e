SUMMARY = "roomd and what a meeting-room device image runs it with"
DESCRIPTION = "roomd (which pulls its GStreamer plugins and the vendor configuration), the \
libgpiod tools for bring-up and, on QEMU, the gpio-sim chip the qemu-virt board needs."
LICENSE = "MIT"

# The QEMU extras make the contents depend on MACHINE.
PACKAGE_ARCH = "${MACHINE_ARCH}"
inherit packagegroup

ROOMD_QEMU_EXTRAS = ""
ROOMD_QEMU_EXTRAS:qemuarm64 = "roomd-qemu-gpio-sim kernel-module-gpio-sim"

RDEPENDS:${PN} = " \
    roomd \
    roomd-config \
    ${ROOMD_QEMU_EXTRAS} \
"
# libgpiod-tools comes from meta-oe; without it the image still builds.
RRECOMMENDS:${PN} = "libgpiod-tools"
