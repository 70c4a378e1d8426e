SUMMARY = "A small systemd image running roomd"
DESCRIPTION = "core-image-minimal plus packagegroup-roomd and ssh (testimage reaches the \
device over it). Needs DISTRO_FEATURES systemd and LICENSE_FLAGS_ACCEPTED commercial (x264)."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_INSTALL:append = " packagegroup-roomd"

# roomd is a systemd service (Type=notify, sysusers.d, tmpfiles.d).
REQUIRED_DISTRO_FEATURES = "systemd"
inherit features_check
