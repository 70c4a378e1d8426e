SUMMARY = "roomd's vendor configuration /etc/roomd/roomd.toml for this MACHINE"
DESCRIPTION = "Names the board file (ROOMD_BOARD) and, when the image sets them, the cloud \
URLs. A recipe of its own so that only this small file, not the cargo build, is per MACHINE."
SECTION = "network"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

SRC_URI = "file://roomd.toml"

# Board file /usr/share/roomd/board/${ROOMD_BOARD}.toml (installed by roomd) that device.board
# selects. `sim` needs no hardware; a product sets its own in its machine or distro config.
ROOMD_BOARD ?= "sim"
ROOMD_BOARD:qemuarm64 ?= "qemu-virt"
# cloud.gds_url (required by `roomd run`) and cloud.activation_url; empty: a config.d drop-in
# has to set them.
ROOMD_GDS_URL ?= ""
ROOMD_ACTIVATION_URL ?= ""

PACKAGE_ARCH = "${MACHINE_ARCH}"

# Only local files: the layout the styhead migration guide gives (wrynose needs it); scarthgap
# releases without UNPACKDIR unpack into WORKDIR instead, hence the fallback in do_install.
S = "${WORKDIR}/sources"
UNPACKDIR = "${S}"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    template=${UNPACKDIR}/roomd.toml
    [ -e "$template" ] || template=${WORKDIR}/roomd.toml
    install -d ${D}${sysconfdir}/roomd
    sed -e 's|@ROOMD_BOARD@|${ROOMD_BOARD}|' "$template" > ${D}${sysconfdir}/roomd/roomd.toml
    # The template ends in [cloud]: these lines land in that table.
    if [ -n "${ROOMD_GDS_URL}" ]; then
        printf 'gds_url = "%s"\n' "${ROOMD_GDS_URL}" >> ${D}${sysconfdir}/roomd/roomd.toml
    fi
    if [ -n "${ROOMD_ACTIVATION_URL}" ]; then
        printf 'activation_url = "%s"\n' "${ROOMD_ACTIVATION_URL}" >> ${D}${sysconfdir}/roomd/roomd.toml
    fi
    chmod 0644 ${D}${sysconfdir}/roomd/roomd.toml
}

FILES:${PN} = "${sysconfdir}/roomd/roomd.toml"
CONFFILES:${PN} = "${sysconfdir}/roomd/roomd.toml"
