# Login shells (serial console): same GStreamer registry as the services (system.conf.d).
export GST_REGISTRY=/var/cache/gstreamer-1.0/registry.aarch64.bin
