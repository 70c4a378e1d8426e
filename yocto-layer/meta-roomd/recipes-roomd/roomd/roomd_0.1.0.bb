SUMMARY = "roomd: device agent for cloud-registered meeting-room video devices"
DESCRIPTION = "roomd registers a room device with the cloud over verified TLS, reports its \
state to journald and systemd, and drives the room's buttons, LEDs and media through GStreamer. \
roomd-sim, the cloud simulator of the same repository, is packaged as ${PN}-sim."
HOMEPAGE = "https://example.invalid/roomd"
SECTION = "network"

LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# destsuffix=${BP}: the checkout lands where the default S points on scarthgap (WORKDIR) and on
# wrynose (UNPACKDIR), so S needs no per-release setting.
SRC_URI = "git://example.invalid/roomd.git;protocol=https;branch=main;destsuffix=${BP}"
# Bump together with roomd-crates.inc (scripts/yocto-crates.py) when Cargo.lock changes:
# cargo builds --frozen, so the crates must be exactly the ones of this commit's Cargo.lock.
ROOMD_SRCREV ?= "2665044dbdf520e9566b5a9793c77b18a1c92c66"
SRCREV = "${ROOMD_SRCREV}"

require roomd-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd pkgconfig

# gstreamer-sys and gstreamer-app-sys find GStreamer through pkg-config.
DEPENDS += "gstreamer1.0 gstreamer1.0-plugins-base"

# Both workspace members: roomd and roomd-sim (packaged apart, in ${PN}-sim).
CARGO_BUILD_FLAGS:append = " --workspace"

# Cargo.toml's rust-version. Scarthgap's oe-core ships Rust 1.75: there the scarthgap-rust-mixin
# layer (meta-lts-mixins, branch scarthgap/rust) is needed; say so instead of failing in do_compile.
ROOMD_MIN_RUST = "1.85"
python () {
    wanted = d.getVar('ROOMD_MIN_RUST')
    have = (d.getVar('RUSTVERSION') or '').rstrip('%')
    if not have:
        return
    def parts(version):
        return [int(x) for x in version.split('.')[:2] if x.isdigit()]
    if parts(have) < parts(wanted):
        raise bb.parse.SkipRecipe(
            "roomd needs Rust >= %s (rust-version in Cargo.toml), RUSTVERSION is %s: on scarthgap "
            "add the scarthgap-rust-mixin layer (meta-lts-mixins, branch scarthgap/rust)" % (wanted, have))
}

# Files of this layer (udev rule, QEMU gpio-sim helper): UNPACKDIR on wrynose, WORKDIR on
# scarthgap releases that predate UNPACKDIR.
SRC_URI += " \
    file://60-roomd-gpio.rules \
    file://roomd-gpio-sim \
    file://roomd-gpio-sim.service \
"
ROOMD_FILES = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/roomd.service ${D}${systemd_system_unitdir}/roomd.service
    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/roomd.sysusers ${D}${nonarch_libdir}/sysusers.d/roomd.conf
    install -m 0644 ${S}/systemd/roomd.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/roomd.conf

    # device.board_dir's default; /etc/roomd/roomd.toml (roomd-config) names the board.
    install -d ${D}${datadir}/roomd/board
    install -m 0644 ${S}/board/*.toml ${D}${datadir}/roomd/board/
    install -d ${D}${sysconfdir}/roomd/config.d

    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${ROOMD_FILES}/60-roomd-gpio.rules ${D}${nonarch_base_libdir}/udev/rules.d/

    # The unit's Documentation= link.
    install -d ${D}${docdir}/roomd
    install -m 0644 ${S}/README.md ${D}${docdir}/roomd/README.md

    install -d ${D}${datadir}/roomd-sim/scenarios
    install -m 0644 ${S}/sim/scenarios/*.toml ${D}${datadir}/roomd-sim/scenarios/

    install -d ${D}${sbindir}
    install -m 0755 ${ROOMD_FILES}/roomd-gpio-sim ${D}${sbindir}/roomd-gpio-sim
    install -m 0644 ${ROOMD_FILES}/roomd-gpio-sim.service ${D}${systemd_system_unitdir}/
}

PACKAGE_BEFORE_PN = "${PN}-sim ${PN}-qemu-gpio-sim"

FILES:${PN} += " \
    ${nonarch_libdir}/sysusers.d/roomd.conf \
    ${nonarch_libdir}/tmpfiles.d/roomd.conf \
    ${nonarch_base_libdir}/udev/rules.d/60-roomd-gpio.rules \
    ${datadir}/roomd \
    ${sysconfdir}/roomd \
"
FILES:${PN}-sim = "${bindir}/roomd-sim ${datadir}/roomd-sim"
FILES:${PN}-qemu-gpio-sim = "${sbindir}/roomd-gpio-sim ${systemd_system_unitdir}/roomd-gpio-sim.service"

SYSTEMD_PACKAGES = "${PN} ${PN}-qemu-gpio-sim"
SYSTEMD_SERVICE:${PN} = "roomd.service"
SYSTEMD_SERVICE:${PN}-qemu-gpio-sim = "roomd-gpio-sim.service"

# The same user and groups as systemd/roomd.sysusers (systemd-sysusers then finds them made).
# video and audio come from base-passwd; gpio is ours (60-roomd-gpio.rules gives it the chips).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio"
USERADD_PARAM:${PN} = "--system --user-group --home-dir ${localstatedir}/lib/roomd --no-create-home \
    --shell ${base_sbindir}/nologin --groups gpio,video,audio \
    --comment 'roomd meeting-room device agent' roomd"

# GStreamer elements roomd creates (src/media/graph.rs, receive_pipeline.rs) and those the
# shipped board files name (videotestsrc, audiotestsrc, x264enc, openh264dec). x264 is in -ugly,
# which needs LICENSE_FLAGS_ACCEPTED += "commercial"; opus needs PACKAGECONFIG opus in
# -plugins-base; webrtcdsp (echo cancellation) needs PACKAGECONFIG webrtcdsp in -plugins-bad
# (webrtc-audio-processing), openh264 PACKAGECONFIG openh264.
RDEPENDS:${PN} = " \
    roomd-config \
    gstreamer1.0 \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-audiotestsrc \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-base-videorate \
    gstreamer1.0-plugins-base-videotestsrc \
    gstreamer1.0-plugins-base-compositor \
    gstreamer1.0-plugins-base-audiomixer \
    gstreamer1.0-plugins-base-volume \
    gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-rtpmanager \
    gstreamer1.0-plugins-bad-videoparsersbad \
    gstreamer1.0-plugins-bad-webrtcdsp \
    gstreamer1.0-plugins-bad-openh264 \
    gstreamer1.0-plugins-ugly-x264 \
"
# Real cameras, microphones, speakers and displays (v4l2src, alsasrc, alsasink, kmssink in a
# board file, as board/qemu-virt-media.toml names them); gpioinfo/gpioset to find and try a
# board's line names (libgpiod is in meta-oe).
RRECOMMENDS:${PN} = " \
    gstreamer1.0-plugins-good-video4linux2 \
    gstreamer1.0-plugins-base-alsa \
    gstreamer1.0-plugins-bad-kms \
    libgpiod-tools \
"
# The simulated media node decodes what roomd sends with openh264dec.
RRECOMMENDS:${PN}-sim = "gstreamer1.0-plugins-bad-openh264"
RDEPENDS:${PN}-qemu-gpio-sim = "${PN} kmod"
RRECOMMENDS:${PN}-qemu-gpio-sim = "kernel-module-gpio-sim"
