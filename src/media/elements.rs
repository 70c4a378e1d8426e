//! The board's media roles against this system's GStreamer registry: every role's element must
//! exist with its properties and caps before the daemon starts, so a board that names an
//! element this image lacks fails at start-up naming the element and the package that brings
//! it, not in the middle of a call.

use super::gst::{MediaError, check_element};
use crate::hw::board::{BoardMedia, ElementSpec};

/// H.264 decoders tried, in order, when the board names none.
pub const FALLBACK_DECODERS: [&str; 2] = ["avdec_h264", "openh264dec"];

/// The Debian (and Yocto, where the names agree) package that provides `element`, for the
/// error message; vendor elements name the vendor's BSP package.
pub fn package_for(element: &str) -> &'static str {
    match element {
        "fakesink" | "filesink" | "fdsink" | "identity" | "queue" | "tee" | "valve"
        | "capsfilter" => "gstreamer1.0 (core)",
        "videotestsrc" | "audiotestsrc" | "appsrc" | "appsink" | "videoconvert" | "videoscale"
        | "videorate" | "audioconvert" | "audioresample" | "audiomixer" | "compositor"
        | "opusenc" | "opusdec" | "volume" => "gstreamer1.0-plugins-base",
        "v4l2src" | "v4l2h264enc" | "v4l2h264dec" | "rtpjitterbuffer" | "rtph264pay"
        | "rtph264depay" | "rtpopuspay" | "rtpopusdepay" | "multifilesink" | "pulsesrc"
        | "pulsesink" | "level" | "spectrum" => "gstreamer1.0-plugins-good",
        "alsasrc" | "alsasink" => "gstreamer1.0-alsa",
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "avdec_h264" => "gstreamer1.0-libav",
        "openh264enc" | "openh264dec" | "kmssink" | "waylandsink" | "webrtcdsp"
        | "webrtcechoprobe" | "h264parse" | "interaudiosrc" | "interaudiosink" => {
            "gstreamer1.0-plugins-bad"
        }
        "libcamerasrc" => "gstreamer1.0-libcamera",
        e if e.starts_with("nv") => "NVIDIA's L4T GStreamer plugins (nvidia-l4t-gstreamer)",
        e if e.starts_with("vpu") || e.starts_with("imx") => "NXP's imx-gst1.0-plugin",
        e if e.starts_with("mpp") => "Rockchip's gstreamer-rockchip (MPP)",
        _ => "the plugin package that provides it",
    }
}

/// Set, GStreamer's V4L2 elements drain their buffer pool when they stop instead of orphaning
/// it. `systemd/roomd.service` sets it: see [`v4l2_stop_leak`].
pub const V4L2_FORCE_DRAIN: &str = "GST_V4L2_FORCE_DRAIN";

/// video4linux2 plugin versions whose elements keep their buffer pool, and with it a
/// descriptor on the device and the kernel's capture buffers, every time they stop on a driver
/// that can orphan buffers (every videobuf2 driver: UVC, vivid, most SoC cameras). Their
/// `gst_v4l2_object_stop` drops its reference to the pool only on the drain path (GStreamer
/// commit 94ba0193, fixed by 492d2b64, issue #1729). Debian 12 ships 1.22.0: there the booted
/// guest's roomd held one more `/dev/video0` descriptor after every call.
pub const V4L2_LEAKING_VERSIONS: [&str; 3] = ["1.20.5", "1.21.3", "1.22.0"];

/// The warning for board roles played by V4L2 elements (`v4l2_roles`) of a plugin version that
/// leaks at stop, unless the drain path is forced; `None` when nothing leaks.
pub fn v4l2_stop_leak(
    v4l2_roles: &[&str],
    plugin_version: &str,
    drain_forced: bool,
) -> Option<String> {
    if v4l2_roles.is_empty() || drain_forced || !V4L2_LEAKING_VERSIONS.contains(&plugin_version) {
        return None;
    }
    Some(format!(
        "GStreamer's video4linux2 plugin {plugin_version} keeps a descriptor on the device of \
         board role(s) {} open after every call (GStreamer issue #1729, fixed in 1.22.1); set \
         {V4L2_FORCE_DRAIN}=1 in roomd's environment (roomd.service does) or update \
         gstreamer1.0-plugins-good",
        v4l2_roles.join(", ")
    ))
}

/// [`v4l2_stop_leak`] for this board, this registry and this process's environment.
pub fn v4l2_stop_leak_here(media: &BoardMedia) -> Option<String> {
    use gstreamer::prelude::PluginFeatureExt as _;
    let v4l2_roles: Vec<&str> = media
        .roles()
        .into_iter()
        .filter(|(_, spec)| {
            gstreamer::ElementFactory::find(&spec.element)
                .and_then(|f| f.plugin_name())
                .is_some_and(|plugin| plugin == "video4linux2")
        })
        .map(|(role, _)| role)
        .collect();
    let version = gstreamer::Registry::get()
        .find_plugin("video4linux2")?
        .version()
        .to_string();
    v4l2_stop_leak(
        &v4l2_roles,
        &version,
        std::env::var_os(V4L2_FORCE_DRAIN).is_some(),
    )
}

/// The board's media with every choice made: the decoder fallback resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedMedia {
    pub media: BoardMedia,
    pub video_decoder: ElementSpec,
}

/// Checks every role's element (installed, properties accepted, caps parse) and resolves the
/// decoder. The error names the role, the element and its package.
pub fn check_board(media: &BoardMedia) -> Result<ResolvedMedia, MediaError> {
    for (role, spec) in media.roles() {
        check_role(role, spec)?;
    }
    let video_decoder = match &media.video_decoder {
        Some(spec) => spec.clone(),
        None => FALLBACK_DECODERS
            .iter()
            .map(|e| ElementSpec::new(e))
            .find(|spec| check_element(spec).is_ok())
            .ok_or_else(|| MediaError::NoDecoder {
                tried: FALLBACK_DECODERS.join(", "),
            })?,
    };
    Ok(ResolvedMedia {
        media: media.clone(),
        video_decoder,
    })
}

/// One role: the element and, when given, its caps.
pub fn check_role(role: &'static str, spec: &ElementSpec) -> Result<(), MediaError> {
    check_element(spec).map_err(|e| match e {
        MediaError::MissingElement(element) => MediaError::RoleMissing {
            role,
            package: package_for(&element),
            element,
        },
        other => MediaError::Role {
            role,
            reason: other.to_string(),
        },
    })?;
    if let Some(caps) = &spec.caps {
        caps.parse::<gstreamer::Caps>()
            .map_err(|e| MediaError::Role {
                role,
                reason: format!("caps {caps:?} do not parse: {e}"),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media() -> BoardMedia {
        BoardMedia {
            camera: ElementSpec::new("videotestsrc"),
            microphone: ElementSpec::new("audiotestsrc"),
            speaker: ElementSpec::new("fakesink"),
            display: ElementSpec::new("fakesink"),
            video_encoder: ElementSpec::new("x264enc"),
            video_decoder: None,
        }
    }

    #[test]
    fn a_missing_element_names_role_element_and_package() {
        let mut m = media();
        m.display = ElementSpec::new("nvdrmvideosink");
        let err = check_board(&m).unwrap_err();
        assert_eq!(
            err.to_string(),
            "board role `display`: GStreamer element `nvdrmvideosink` is not installed \
             (install NVIDIA's L4T GStreamer plugins (nvidia-l4t-gstreamer))"
        );
    }

    #[test]
    fn the_decoder_falls_back_to_an_installed_one() {
        let resolved = check_board(&media()).unwrap();
        assert!(
            FALLBACK_DECODERS.contains(&resolved.video_decoder.element.as_str()),
            "{:?}",
            resolved.video_decoder
        );
    }

    #[test]
    fn bad_caps_are_a_role_error() {
        let mut m = media();
        m.camera.caps = Some("video/x-raw,width=".into());
        let err = check_board(&m).unwrap_err().to_string();
        assert!(err.starts_with("board role `camera`: caps"), "{err}");
    }

    #[test]
    fn the_v4l2_stop_leak_is_named_for_the_leaking_versions_only() {
        let warning = v4l2_stop_leak(&["camera"], "1.22.0", false).unwrap();
        assert!(warning.contains("plugin 1.22.0"), "{warning}");
        assert!(warning.contains("board role(s) camera"), "{warning}");
        assert!(warning.contains("GST_V4L2_FORCE_DRAIN=1"), "{warning}");
        assert_eq!(v4l2_stop_leak(&["camera"], "1.22.0", true), None);
        assert_eq!(v4l2_stop_leak(&["camera"], "1.22.1", false), None);
        assert_eq!(v4l2_stop_leak(&[], "1.22.0", false), None);
        // This machine's board of test sources plays nothing through V4L2.
        let _ = crate::media::gst::init();
        assert_eq!(v4l2_stop_leak_here(&media()), None);
    }

    #[test]
    fn known_packages() {
        assert_eq!(package_for("alsasink"), "gstreamer1.0-alsa");
        assert_eq!(package_for("x264enc"), "gstreamer1.0-plugins-ugly");
        assert_eq!(package_for("webrtcdsp"), "gstreamer1.0-plugins-bad");
    }
}
