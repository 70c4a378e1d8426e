//! GStreamer initialisation and element checks.

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::hw::board::ElementSpec;

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum MediaError {
    /// GStreamer cannot be initialised: {0}
    Init(String),
    /// GStreamer element `{0}` is not installed (no plugin provides it)
    MissingElement(String),
    /// GStreamer element `{element}` cannot be created: {reason}
    Create { element: String, reason: String },
    /// GStreamer element `{element}` has no property `{property}`
    NoProperty { element: String, property: String },
    /// GStreamer element `{element}`: property `{property}` cannot take {value:?}: {reason}
    BadValue {
        element: String,
        property: String,
        value: String,
        reason: String,
    },
    /// GStreamer pipeline: {0}
    Pipeline(String),
    /// board role `{role}`: GStreamer element `{element}` is not installed (install {package})
    RoleMissing {
        role: &'static str,
        element: String,
        package: &'static str,
    },
    /// board role `{role}`: {reason}
    Role { role: &'static str, reason: String },
    /// no H.264 decoder is installed (tried {tried}); name one as the board's `video_decoder`
    NoDecoder { tried: String },
}

/// Pipelines built and not yet torn down, for the teardown test.
static LIVE_PIPELINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// roomd's send and receive pipelines alive in this process.
pub fn live_pipelines() -> usize {
    LIVE_PIPELINES.load(std::sync::atomic::Ordering::SeqCst)
}

/// A pipeline parsed from launch text that goes to Null (and waits for it) when dropped, and
/// counts in [`live_pipelines`] until then.
#[derive(Debug)]
pub struct OwnedPipeline(gst::Pipeline);

impl OwnedPipeline {
    /// Parses `text`; `what` names the graph in errors ("the send graph").
    pub fn launch(text: &str, what: &str) -> Result<Self, MediaError> {
        init()?;
        let pipeline = gst::parse::launch(text)
            .map_err(|e| MediaError::Pipeline(format!("{what} does not parse: {e}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::Pipeline(format!("{what} is not a pipeline")))?;
        LIVE_PIPELINES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Self(pipeline))
    }

    /// The element named `name`, cast to `T`.
    pub fn element<T: IsA<gst::Element>>(&self, name: &str) -> Result<T, MediaError> {
        self.0
            .by_name(name)
            .ok_or_else(|| MediaError::Pipeline(format!("element {name} missing from the graph")))?
            .downcast::<T>()
            .map_err(|_| MediaError::Pipeline(format!("element {name} has the wrong type")))
    }

    pub fn play(&self, what: &str) -> Result<(), MediaError> {
        self.0
            .set_state(gst::State::Playing)
            .map(|_| ())
            .map_err(|_| MediaError::Pipeline(format!("{what} refused to start")))
    }

    /// Sets the pipeline to Null and waits (bounded) for it to get there.
    pub fn stop(&self) {
        let _ = self.0.set_state(gst::State::Null);
        let _ = self.0.state(gst::ClockTime::from_seconds(5));
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for OwnedPipeline {
    fn drop(&mut self) {
        self.stop();
        LIVE_PIPELINES.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Initialises GStreamer (idempotent) and returns its version string.
/// A pipeline error as roomd reports it: the element's path, the error and GStreamer's debug
/// details.
pub fn error_text(e: &gst::message::Error) -> String {
    format!(
        "{}: {}{}",
        e.src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default(),
        e.error(),
        e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
    )
}

pub fn init() -> Result<String, MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))?;
    Ok(gst::version_string().to_string())
}

/// Creates the element with its properties, the way a pipeline will; proves the board's
/// choice works on this system before a call needs it.
pub fn check_element(spec: &ElementSpec) -> Result<(), MediaError> {
    init()?;
    let factory = gst::ElementFactory::find(&spec.element)
        .ok_or_else(|| MediaError::MissingElement(spec.element.clone()))?;
    let element = factory.create().build().map_err(|e| MediaError::Create {
        element: spec.element.clone(),
        reason: e.to_string(),
    })?;
    for (property, value) in &spec.properties {
        let pspec = element
            .find_property(property)
            .ok_or_else(|| MediaError::NoProperty {
                element: spec.element.clone(),
                property: property.clone(),
            })?;
        let parsed = gst::glib::Value::deserialize_with_pspec(value, &pspec).map_err(|e| {
            MediaError::BadValue {
                element: spec.element.clone(),
                property: property.clone(),
                value: value.clone(),
                reason: e.to_string(),
            }
        })?;
        element.set_property_from_value(property, &parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(element: &str, props: &[(&str, &str)]) -> ElementSpec {
        ElementSpec {
            element: element.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            caps: None,
        }
    }

    #[test]
    fn test_sources_and_x264_are_available() {
        let version = init().unwrap();
        assert!(version.starts_with("GStreamer 1."), "{version}");
        check_element(&spec(
            "videotestsrc",
            &[("is-live", "true"), ("pattern", "ball")],
        ))
        .unwrap();
        check_element(&spec("x264enc", &[("tune", "zerolatency")])).unwrap();
    }

    #[test]
    fn missing_elements_and_bad_properties_are_named() {
        let err = check_element(&spec("v4l2h264enc-nonexistent", &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "GStreamer element `v4l2h264enc-nonexistent` is not installed (no plugin provides it)"
        );
        let err = check_element(&spec("videotestsrc", &[("colour", "red")])).unwrap_err();
        assert!(matches!(err, MediaError::NoProperty { .. }), "{err}");
        let err = check_element(&spec("videotestsrc", &[("pattern", "plaid")])).unwrap_err();
        assert!(matches!(err, MediaError::BadValue { .. }), "{err}");
    }
}
