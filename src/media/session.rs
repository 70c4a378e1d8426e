//! One call's media: a task that owns the UDP socket to the media node, the send pipeline and
//! the receive pipelines, and speaks multistream (wire profile §7).
//!
//! - Sender: SCAs at start and whenever mute or the privacy switch changes; every SCR from the
//!   node reconfigures the layers (the capture keeps running) and is acknowledged by an SCA.
//! - Receiver: an SCR for the room's layout, resent after 250 ms doubling until an SCA
//!   acknowledges it, at most 8 times.
//! - Every RTP packet leaves with the CSI extension and its layer's SSRC; sender reports go out
//!   every second; BYE at the end.
//!
//! The send path gates packets itself as well as closing the pipeline's valves, so once an SCA
//! saying "muted" or "layer stopped" is on the wire no later packet contradicts it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::controls::RoomControls;
use super::graph::{AUDIO_PT, AudioDsp, GraphSpec, VIDEO_PT};
use super::gst::MediaError;
use super::layers::{self, Capture, LayerConfig};
use super::layout::{self, LayoutFamily};
use super::plan::MediaPlan;
use super::receive_pipeline::{Playout, ReceiveEvent, ReceivePipeline, ReceiveSpec};
use super::send_pipeline::{OutPacket, PipelineEvent, SendPipeline, SendStream};
use super::status::{
    AudioSendState, LayerState, MediaAudioView, MediaLayerView, MediaReceiveView, MediaStatus,
    MediaView,
};
use crate::proto::multistream::{Message, Sca, ScaEntry, Scr, SourceState};
use crate::proto::rtp::{self, Demux, SenderReport};
use crate::status_slice::StatusSlice;

/// Diagnostic events the media engine raises (wire profile §5).
pub mod events {
    pub const TX_START: &str = "client.media.tx.start";
    pub const RX_START: &str = "client.media.rx.start";
    pub const RENDER_START: &str = "client.media.render.start";
    pub const QUALITY: &str = "client.mediaquality.event";
    pub const RX_STOP: &str = "client.media.rx.stop";
    pub const TX_STOP: &str = "client.media.tx.stop";
    pub const RENDER_STOP: &str = "client.media.render.stop";
}

/// How the engine runs (configuration `[media]` plus the board's elements).
#[derive(Debug, Clone)]
pub struct MediaOptions {
    pub graph: GraphSpec,
    /// First SCR resend after this; each next one waits twice as long.
    pub scr_resend_initial: Duration,
    /// Resends before giving up.
    pub scr_resend_max: u32,
    pub rtcp_interval: Duration,
    /// How often `client.mediaquality.event` is raised during a call.
    pub quality_interval: Duration,
    /// Decode, compose and play what the node sends; off: only count its packets.
    pub receive: bool,
    /// The display, speaker and decoder the received media goes through.
    pub output: OutputOptions,
}

/// Where received media goes, and what the microphone does about it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputOptions {
    pub playout: Playout,
    /// Echo cancellation, noise suppression and gain control on the microphone.
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

/// Self-view frames: small, the compositor scales them to the picture-in-picture.
const SELFVIEW_SIZE: (u32, u32) = (320, 180);
/// The node sends the three loudest speakers.
const AUDIO_SLOTS: usize = 3;

impl MediaOptions {
    pub fn capture(&self) -> Capture {
        Capture {
            width: self.graph.capture_width,
            height: self.graph.capture_height,
            fps: self.graph.capture_fps,
        }
    }
}

/// What a call hands the engine once the answer is in.
#[derive(Debug, Clone)]
pub struct MediaStart {
    pub call_id: u32,
    pub correlation_id: String,
    pub node: SocketAddr,
    pub ext_id: u8,
    pub plan: MediaPlan,
}

/// A diagnostic event for the call manager to log and keep with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEvent {
    pub call_id: u32,
    pub name: &'static str,
    /// `media-engine` for failures (seed 000's `error=media-engine`).
    pub error: Option<String>,
}

/// Stops the session (BYE, pipelines to Null) when told or dropped.
#[derive(Debug)]
pub struct MediaSession {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MediaSession {
    /// Tears down and waits until the pipelines are at Null.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds the socket, builds and starts the send pipeline, and spawns the session task. The
/// session follows `room` (mute, privacy, layout) and writes what it does into `status`.
pub async fn start(
    options: &MediaOptions,
    start: MediaStart,
    room: watch::Receiver<RoomControls>,
    status: StatusSlice<MediaStatus>,
    events: mpsc::UnboundedSender<MediaEvent>,
) -> Result<MediaSession, MediaError> {
    let local: SocketAddr = if start.node.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| MediaError::Pipeline(format!("binding the media socket: {e}")))?;
    socket
        .connect(start.node)
        .await
        .map_err(|e| MediaError::Pipeline(format!("media socket to {}: {e}", start.node)))?;
    let (packets_tx, packets) = mpsc::channel(1024);
    let (output_tx, output_events) = mpsc::unbounded_channel();
    let mut graph = options.graph.clone();
    graph.layers = start.plan.video_ssrcs.len();
    // The receive side first: the microphone's echo canceller finds the speaker's probe by
    // name when it starts.
    let output = if options.receive {
        let echo_probe = format!("roomd-echo-{}-{:08x}", start.call_id, rand::random::<u32>());
        let o = &options.output;
        let spec = ReceiveSpec {
            playout: o.playout.clone(),
            video_slots: start.plan.receive_ssrcs.len(),
            audio_slots: AUDIO_SLOTS,
            echo_probe: echo_probe.clone(),
            selfview_width: SELFVIEW_SIZE.0,
            selfview_height: SELFVIEW_SIZE.1,
        };
        graph.selfview = Some(SELFVIEW_SIZE);
        graph.dsp = o.echo_cancellation.then_some(AudioDsp {
            echo_probe,
            noise_suppression: o.noise_suppression,
            gain_control: o.gain_control,
        });
        Some(ReceivePipeline::start(&spec, output_tx)?)
    } else {
        None
    };
    let pipeline = SendPipeline::build(&graph, packets_tx)?;
    if let Some(output) = &output {
        pipeline.feed_selfview(output.selfview_source())?;
    }
    let (stop_tx, stop) = oneshot::channel();
    let session = Session::new(options.clone(), start, socket, status, room, events, output);
    let task = tokio::spawn(session.run(pipeline, packets, output_events, stop));
    Ok(MediaSession {
        stop: Some(stop_tx),
        task: Some(task),
    })
}

#[derive(Debug, Default)]
struct Counters {
    packets: u32,
    octets: u32,
    last_rtp_timestamp: u32,
    last_sent: Option<(Instant, SystemTime)>,
    sent_since_report: bool,
}

impl Counters {
    fn sent(&mut self, packet: &[u8]) {
        if let Ok(p) = rtp::parse(packet) {
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(p.payload.len() as u32);
            self.last_rtp_timestamp = p.header.timestamp;
            self.last_sent = Some((Instant::now(), SystemTime::now()));
            self.sent_since_report = true;
        }
    }

    /// A sender report for now, extrapolating the RTP clock from the last packet.
    fn report(&self, ssrc: u32, clock_rate: u32) -> Option<SenderReport> {
        let (at, _) = self.last_sent?;
        let elapsed = at.elapsed();
        let ticks = (elapsed.as_secs_f64() * f64::from(clock_rate)) as u32;
        Some(SenderReport {
            ssrc,
            ntp: rtp::ntp_timestamp(SystemTime::now()),
            rtp_timestamp: self.last_rtp_timestamp.wrapping_add(ticks),
            packet_count: self.packets,
            octet_count: self.octets,
        })
    }
}

#[derive(Debug)]
struct Layer {
    /// The SSRC this layer is sent on (from the SCR's srcid or the offer).
    ssrc: u32,
    config: Option<LayerConfig>,
    counters: Counters,
}

/// One SSRC the node sends on.
#[derive(Debug)]
struct ReceiveStream {
    csi: Option<u32>,
    packets: u64,
    /// Where its packets go in the receive pipeline.
    input: Input,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// A receive slot of the device's SCR (its `srcid`).
    Video(usize),
    /// One of the mixer's inputs.
    Audio(usize),
    /// Neither: counted only.
    None,
}

#[derive(Debug)]
struct PendingScr {
    scr: Scr,
    resends: u32,
    interval: Duration,
    next_at: tokio::time::Instant,
}

struct Session {
    options: MediaOptions,
    start: MediaStart,
    socket: UdpSocket,
    status: StatusSlice<MediaStatus>,
    room: watch::Receiver<RoomControls>,
    events: mpsc::UnboundedSender<MediaEvent>,
    layers: Vec<Layer>,
    audio: Counters,
    muted: bool,
    camera_off: bool,
    layout: LayoutFamily,
    /// The node's last SCR (to re-ack repeats and to repeat entries on a re-advertisement).
    last_node_scr: Option<Scr>,
    pending_scr: Option<PendingScr>,
    video_sca_seqno: u16,
    audio_sca_seqno: u16,
    scr_seqno: u16,
    receive: HashMap<u32, ReceiveStream>,
    /// The SSRC each mixer input plays, and when it last had a packet.
    audio_inputs: [Option<(u32, Instant)>; AUDIO_SLOTS],
    output: Option<ReceivePipeline>,
    volume: u8,
    speaker_muted: bool,
    selfview: bool,
    tx_started: bool,
    rx_started: bool,
    render_started: bool,
    view: MediaView,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("call_id", &self.start.call_id)
            .finish_non_exhaustive()
    }
}

fn next(seqno: &mut u16) -> u16 {
    *seqno = seqno.wrapping_add(1);
    if *seqno == 0 {
        *seqno = 1;
    }
    *seqno
}

impl Session {
    fn new(
        options: MediaOptions,
        start: MediaStart,
        socket: UdpSocket,
        status: StatusSlice<MediaStatus>,
        mut room: watch::Receiver<RoomControls>,
        events: mpsc::UnboundedSender<MediaEvent>,
        output: Option<ReceivePipeline>,
    ) -> Self {
        let controls = room.borrow_and_update().clone();
        let layers = start
            .plan
            .video_ssrcs
            .iter()
            .map(|&ssrc| Layer {
                ssrc,
                config: None,
                counters: Counters::default(),
            })
            .collect();
        let view = MediaView {
            call_id: start.call_id,
            node: start.node.to_string(),
            layout: controls.layout,
            ..MediaView::default()
        };
        Self {
            options,
            start,
            socket,
            status,
            room,
            events,
            layers,
            audio: Counters::default(),
            muted: controls.microphones_muted,
            camera_off: controls.camera_off,
            layout: controls.layout,
            last_node_scr: None,
            pending_scr: None,
            video_sca_seqno: 0,
            audio_sca_seqno: 0,
            scr_seqno: 0,
            receive: HashMap::new(),
            audio_inputs: [None; AUDIO_SLOTS],
            output,
            volume: controls.volume,
            speaker_muted: controls.speaker_muted,
            selfview: controls.selfview,
            tx_started: false,
            rx_started: false,
            render_started: false,
            view,
        }
    }

    fn event(&self, name: &'static str, error: Option<&str>) {
        let _ = self.events.send(MediaEvent {
            call_id: self.start.call_id,
            name,
            error: error.map(str::to_owned),
        });
    }

    async fn run(
        mut self,
        pipeline: SendPipeline,
        mut packets: mpsc::Receiver<OutPacket>,
        mut output_events: mpsc::UnboundedReceiver<ReceiveEvent>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let call_id = self.start.call_id;
        let mut bus = Box::pin(pipeline.events());
        pipeline.set_microphone_muted(self.muted);
        pipeline.set_camera_off(self.camera_off);
        self.apply_output();
        if let Err(e) = pipeline.start() {
            tracing::error!(call_id, "Call {call_id}: {e}");
            self.event(events::TX_STOP, Some("media-engine"));
            self.publish(false);
            return;
        }
        tracing::info!(
            call_id,
            correlation_id = %self.start.correlation_id,
            "Call {call_id}: media to {} (audio ssrc {:#010x}, video ssrcs {})",
            self.start.node,
            self.start.plan.audio_ssrc,
            self.start
                .plan
                .video_ssrcs
                .iter()
                .map(|s| format!("{s:#010x}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.advertise_video(0, &[]).await;
        self.advertise_audio().await;
        self.request_layout().await;
        self.publish(true);

        let mut rtcp = tokio::time::interval(self.options.rtcp_interval);
        rtcp.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut quality = tokio::time::interval_at(
            tokio::time::Instant::now() + self.options.quality_interval,
            self.options.quality_interval,
        );
        let mut buf = vec![0_u8; 2048];
        let mut out = Vec::with_capacity(1300);
        loop {
            let resend_at = self.pending_scr.as_ref().map(|p| p.next_at);
            tokio::select! {
                _ = &mut stop => break,
                packet = packets.recv() => match packet {
                    Some(packet) => self.send_packet(packet, &mut out).await,
                    None => break,
                },
                received = self.socket.recv(&mut buf) => match received {
                    Ok(len) => self.received(&buf[..len], &pipeline).await,
                    Err(e) => tracing::debug!(call_id, "media socket: {e}"),
                },
                Some(event) = output_events.recv() => {
                    if self.output_event(event) {
                        break;
                    }
                }
                _ = rtcp.tick() => {
                    self.send_reports().await;
                    self.publish(true);
                }
                _ = quality.tick() => self.quality(),
                () = sleep_until(resend_at) => self.resend_scr().await,
                changed = self.room.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.room_changed(&pipeline).await;
                }
                Some(event) = bus.next() => match event {
                    PipelineEvent::Playing => tracing::debug!(call_id, "Call {call_id}: send pipeline playing"),
                    PipelineEvent::Error(e) => {
                        tracing::error!(call_id, "Call {call_id}: send pipeline error: {e}");
                        self.event(events::TX_STOP, Some("media-engine"));
                        self.tx_started = false;
                        break;
                    }
                    PipelineEvent::Eos => break,
                },
            }
        }
        self.teardown(pipeline).await;
    }

    async fn teardown(mut self, pipeline: SendPipeline) {
        let call_id = self.start.call_id;
        let sent: Vec<u32> = std::iter::once((self.start.plan.audio_ssrc, &self.audio))
            .chain(self.layers.iter().map(|l| (l.ssrc, &l.counters)))
            .filter(|(_, c)| c.packets > 0)
            .map(|(ssrc, _)| ssrc)
            .collect();
        if !sent.is_empty() {
            let _ = self.socket.send(&rtp::bye(&sent)).await;
        }
        pipeline.stop();
        drop(pipeline);
        if let Some(output) = self.output.take() {
            output.stop();
        }
        self.receive.clear();
        tracing::info!(call_id, "Call {call_id}: media stopped, pipelines at Null");
        if self.tx_started {
            self.event(events::TX_STOP, None);
        }
        if self.render_started {
            self.event(events::RENDER_STOP, None);
        }
        self.publish(false);
    }

    /// What the receive pipeline reported; true ends the session (it failed).
    fn output_event(&mut self, event: ReceiveEvent) -> bool {
        let call_id = self.start.call_id;
        match event {
            ReceiveEvent::FirstVideoFrame { .. } | ReceiveEvent::FirstAudioSample { .. } => {
                if !self.rx_started {
                    self.rx_started = true;
                    self.event(events::RX_START, None);
                }
            }
            ReceiveEvent::Rendered => {
                if !self.render_started {
                    self.render_started = true;
                    self.event(events::RENDER_START, None);
                }
            }
            ReceiveEvent::Error(e) => {
                tracing::error!(call_id, "Call {call_id}: receive pipeline error: {e}");
                self.event(events::RX_STOP, Some("media-engine"));
                return true;
            }
        }
        false
    }

    /// `client.mediaquality.event`: per stream, packets, loss, jitter and frame rate since the
    /// last one, logged with the event.
    fn quality(&mut self) {
        let call_id = self.start.call_id;
        let secs = self.options.quality_interval.as_secs_f64().max(1.0);
        let mut streams = Vec::new();
        for (ssrc, stream) in &self.receive {
            let stats = match (stream.input, &self.output) {
                (Input::Video(slot), Some(o)) => o.video_stats(slot),
                (Input::Audio(slot), Some(o)) => o.audio_stats(slot),
                _ => None,
            };
            let Some(stats) = stats else { continue };
            streams.push(format!(
                "rx {ssrc:#010x} csi={} packets={} lost={} jitter={:.1}ms decoded={} ({:.1}/s)",
                stream.csi.unwrap_or(0),
                stats.pushed,
                stats.lost,
                stats.jitter_ms,
                stats.decoded,
                stats.decoded as f64 / secs,
            ));
        }
        for layer in &self.layers {
            if let Some(c) = layer.config {
                streams.push(format!(
                    "tx {:#010x} {}x{}@{} packets={}",
                    layer.ssrc, c.width, c.height, c.fps, layer.counters.packets
                ));
            }
        }
        streams.push(format!(
            "tx {:#010x} audio packets={}",
            self.start.plan.audio_ssrc, self.audio.packets
        ));
        tracing::info!(
            call_id,
            "Call {call_id}: {}: {}",
            events::QUALITY,
            streams.join("; ")
        );
        self.event(events::QUALITY, None);
    }

    /// Volume, speaker mute and the layout's geometry into the receive pipeline.
    fn apply_output(&self) {
        let Some(output) = &self.output else { return };
        output.set_volume(self.volume, self.speaker_muted);
        let o = &self.options.output;
        let regions = layout::regions(
            self.layout,
            o.playout.display_width,
            o.playout.display_height,
        );
        let slots: Vec<_> = (0..self.start.plan.receive_ssrcs.len())
            .map(|i| regions.get(i).copied())
            .collect();
        let selfview = (self.selfview && !self.camera_off)
            .then(|| layout::selfview_region(o.playout.display_width, o.playout.display_height));
        output.set_layout(&slots, selfview);
    }

    async fn send_packet(&mut self, packet: OutPacket, out: &mut Vec<u8>) {
        let (ssrc, csi, counters) = match packet.stream {
            // Muted: the encoder gets silence at the source; those frames go out.
            SendStream::Audio => (
                self.start.plan.audio_ssrc,
                self.start.plan.audio_csi,
                &mut self.audio,
            ),
            SendStream::Layer(i) => {
                let Some(layer) = self.layers.get_mut(i) else {
                    return;
                };
                if self.camera_off || layer.config.is_none() {
                    return;
                }
                (layer.ssrc, self.start.plan.video_csi, &mut layer.counters)
            }
        };
        if let Err(e) = rtp::write_with_csi(&packet.data, ssrc, self.start.ext_id, csi, out) {
            tracing::warn!("payloader packet not sent: {e}");
            return;
        }
        match self.socket.send(out).await {
            Ok(_) => {
                counters.sent(out);
                if !self.tx_started {
                    self.tx_started = true;
                    self.event(events::TX_START, None);
                }
            }
            Err(e) => tracing::debug!("media send: {e}"),
        }
    }

    async fn send_reports(&mut self) {
        let mut reports = Vec::new();
        if self.audio.sent_since_report {
            reports.extend(self.audio.report(self.start.plan.audio_ssrc, 48_000));
            self.audio.sent_since_report = false;
        }
        for layer in &mut self.layers {
            if layer.counters.sent_since_report {
                reports.extend(layer.counters.report(layer.ssrc, 90_000));
                layer.counters.sent_since_report = false;
            }
        }
        for report in reports {
            let _ = self
                .socket
                .send(&rtp::sender_report_compound(&report, "roomd"))
                .await;
        }
    }

    async fn received(&mut self, datagram: &[u8], pipeline: &SendPipeline) {
        match rtp::demux(datagram) {
            Demux::Rtcp => {
                for message in crate::proto::multistream::decode_datagram(datagram) {
                    match message {
                        Ok(Message::Scr(scr)) => self.node_scr(scr, pipeline).await,
                        Ok(Message::Sca(sca)) => self.node_sca(&sca),
                        Err(e) => tracing::warn!(
                            call_id = self.start.call_id,
                            "multistream message from {} ignored: {e}",
                            self.start.node
                        ),
                    }
                }
            }
            Demux::Rtp => self.received_rtp(datagram),
            Demux::Stun | Demux::Unknown => {}
        }
    }

    fn received_rtp(&mut self, datagram: &[u8]) {
        let packet = match rtp::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("RTP from the media node ignored: {e}");
                return;
            }
        };
        let ssrc = packet.header.ssrc;
        let csi = packet.csi(self.start.ext_id);
        let input = match packet.header.payload_type {
            VIDEO_PT => self
                .start
                .plan
                .receive_ssrcs
                .iter()
                .position(|s| *s == ssrc)
                .map_or(Input::None, Input::Video),
            AUDIO_PT => self.audio_input(ssrc),
            _ => Input::None,
        };
        let stream = self.receive.entry(ssrc).or_insert(ReceiveStream {
            csi: None,
            packets: 0,
            input,
        });
        stream.packets += 1;
        stream.input = input;
        if csi.is_some() {
            stream.csi = csi;
        }
        if self.output.is_none() && !self.rx_started {
            // Counting only: the first packet is all there is to mark.
            self.rx_started = true;
            self.event(events::RX_START, None);
        }
        if let Some(output) = &self.output {
            match input {
                Input::Video(slot) => output.push_video(slot, datagram),
                Input::Audio(slot) => output.push_audio(slot, datagram),
                Input::None => {}
            }
        }
    }

    /// The mixer input for audio SSRC `ssrc`: the one it has, else a free one, else the one
    /// silent the longest (the node switched who it sends).
    fn audio_input(&mut self, ssrc: u32) -> Input {
        let now = Instant::now();
        let slot = self
            .audio_inputs
            .iter()
            .position(|i| i.is_some_and(|(s, _)| s == ssrc))
            .or_else(|| self.audio_inputs.iter().position(Option::is_none))
            .or_else(|| {
                self.audio_inputs
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, i)| i.map(|(_, at)| at))
                    .map(|(slot, _)| slot)
            });
        match slot {
            Some(slot) => {
                self.audio_inputs[slot] = Some((ssrc, now));
                Input::Audio(slot)
            }
            None => Input::None,
        }
    }

    /// An SCR from the node: reconfigure the layers it asks for, stop the others, ack.
    async fn node_scr(&mut self, scr: Scr, pipeline: &SendPipeline) {
        let call_id = self.start.call_id;
        tracing::info!(call_id, "Multistream: Video Receive: {}", scr.summary());
        for (i, request) in scr.requests.iter().enumerate() {
            tracing::info!(
                call_id,
                "Multistream: Video [sci {:03}] {}",
                i + 1,
                request.summary()
            );
        }
        self.view.scr_received += 1;
        if self
            .last_node_scr
            .as_ref()
            .is_some_and(|last| last.seqno == scr.seqno)
        {
            // A resend: the first one was applied; only the ack went missing.
            let entries = self.entries_for(&scr);
            self.advertise_video(scr.seqno, &entries).await;
            return;
        }
        let capture = self.options.capture();
        let mut used = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let request = scr
                .requests
                .get(i)
                .filter(|r| r.payload_type == VIDEO_PT || r.payload_type == 0);
            let config = request.and_then(|r| layers::layer_for(r, capture));
            let wanted = request
                .map(|r| r.srcid)
                .filter(|s| self.start.plan.video_ssrcs.contains(s) && !used.contains(s));
            layer.ssrc = wanted.unwrap_or(self.start.plan.video_ssrcs[i]);
            used.push(layer.ssrc);
            if config != layer.config {
                match config {
                    Some(c) => tracing::info!(
                        call_id,
                        "Call {call_id}: layer {i} on ssrc {:#010x}: {}x{}@{} {} kbit/s",
                        layer.ssrc,
                        c.width,
                        c.height,
                        c.fps,
                        c.bitrate_kbps
                    ),
                    None => tracing::info!(call_id, "Call {call_id}: layer {i} stopped"),
                }
            }
            layer.config = config;
            pipeline.configure_layer(i, config);
        }
        let entries = self.entries_for(&scr);
        self.last_node_scr = Some(scr.clone());
        self.advertise_video(scr.seqno, &entries).await;
        self.publish(true);
    }

    /// One SCA entry per request of `scr`, in the states the layers are in now.
    fn entries_for(&self, scr: &Scr) -> Vec<ScaEntry> {
        scr.requests
            .iter()
            .enumerate()
            .map(|(i, request)| {
                let layer = self.layers.get(i);
                let state = match layer {
                    None => SourceState::Disabled,
                    Some(l) if l.config.is_none() => {
                        if request.payload_type != VIDEO_PT && request.payload_type != 0 {
                            SourceState::PolicyViolation
                        } else {
                            SourceState::Disabled
                        }
                    }
                    Some(_) if self.camera_off => SourceState::Avatar,
                    Some(_) => SourceState::Live,
                };
                ScaEntry {
                    srcid: layer.map_or(request.srcid, |l| l.ssrc),
                    request_index: i as u8,
                    state,
                }
            })
            .collect()
    }

    /// The node acknowledged one of our SCRs.
    fn node_sca(&mut self, sca: &Sca) {
        self.view.sca_received += 1;
        let Some(pending) = &self.pending_scr else {
            return;
        };
        if sca.ack_seqno == pending.scr.seqno {
            tracing::info!(
                call_id = self.start.call_id,
                "Multistream: main_video SCR (v1) seqno={} acknowledged after {} resend(s)",
                pending.scr.seqno,
                pending.resends
            );
            self.pending_scr = None;
        }
    }

    async fn advertise_video(&mut self, ack_seqno: u16, entries: &[ScaEntry]) {
        let sca = Sca {
            sender_ssrc: self.start.plan.video_ssrcs[0],
            seqno: next(&mut self.video_sca_seqno),
            media_ssrc: 0,
            ack_seqno,
            num_total_sources: 1,
            num_live_sources: u8::from(!self.camera_off),
            entries: entries.to_vec(),
        };
        self.send_sca("Video", &sca).await;
    }

    async fn advertise_audio(&mut self) {
        let state = if self.muted {
            SourceState::Avatar
        } else {
            SourceState::Live
        };
        let sca = Sca {
            sender_ssrc: self.start.plan.audio_ssrc,
            seqno: next(&mut self.audio_sca_seqno),
            media_ssrc: 0,
            ack_seqno: 0,
            num_total_sources: 1,
            num_live_sources: u8::from(!self.muted),
            entries: vec![ScaEntry {
                srcid: self.start.plan.audio_ssrc,
                request_index: 0,
                state,
            }],
        };
        self.send_sca("Audio", &sca).await;
    }

    /// Logs an SCA in the seed's wording (`Multistream: Video Send: SCA [...]`), counts it
    /// and sends it.
    async fn send_sca(&mut self, media: &str, sca: &Sca) {
        tracing::info!(
            call_id = self.start.call_id,
            "Multistream: {media} Send: {}",
            sca.summary()
        );
        self.view.sca_sent += 1;
        let _ = self.socket.send(&sca.encode()).await;
    }

    /// Sends the SCR for the room's layout; it supersedes one still waiting for its ack.
    async fn request_layout(&mut self) {
        let mut requests = layout::receive_requests(self.layout);
        for (request, ssrc) in requests.iter_mut().zip(&self.start.plan.receive_ssrcs) {
            request.srcid = *ssrc;
        }
        requests.truncate(self.start.plan.receive_ssrcs.len());
        let scr = Scr {
            sender_ssrc: self.start.plan.video_ssrcs[0],
            seqno: next(&mut self.scr_seqno),
            media_ssrc: 0,
            requests,
        };
        let call_id = self.start.call_id;
        tracing::info!(call_id, "Multistream: Video Send: {}", scr.summary());
        for (i, request) in scr.requests.iter().enumerate() {
            tracing::info!(
                call_id,
                "Multistream: Video [sci {:03}] {}",
                i + 11,
                request.summary()
            );
        }
        self.view.scr_sent += 1;
        let _ = self.socket.send(&scr.encode()).await;
        let interval = self.options.scr_resend_initial;
        self.pending_scr = Some(PendingScr {
            scr,
            resends: 0,
            interval,
            next_at: tokio::time::Instant::now() + interval,
        });
    }

    async fn resend_scr(&mut self) {
        let call_id = self.start.call_id;
        let max = self.options.scr_resend_max;
        let Some(pending) = self.pending_scr.as_mut() else {
            return;
        };
        if pending.resends >= max {
            tracing::warn!(
                call_id,
                "Multistream W: main_video resend: SCR not acknowledged (v1) seqno={} resend count={}, giving up",
                pending.scr.seqno,
                pending.resends
            );
            self.pending_scr = None;
            self.view.scr_gave_up += 1;
            self.event(events::RX_STOP, Some("media-engine"));
            self.publish(true);
            return;
        }
        pending.resends += 1;
        pending.interval *= 2;
        pending.next_at = tokio::time::Instant::now() + pending.interval;
        tracing::info!(
            call_id,
            "Multistream: main_video resend: SCR (v1) seqno={} resend count={}",
            pending.scr.seqno,
            pending.resends
        );
        let bytes = pending.scr.encode();
        self.view.scr_resends += 1;
        let _ = self.socket.send(&bytes).await;
    }

    async fn room_changed(&mut self, pipeline: &SendPipeline) {
        let c = self.room.borrow_and_update().clone();
        if c.microphones_muted != self.muted {
            self.muted = c.microphones_muted;
            pipeline.set_microphone_muted(self.muted);
            self.advertise_audio().await;
            self.publish(true);
        }
        if c.camera_off != self.camera_off {
            self.camera_off = c.camera_off;
            pipeline.set_camera_off(self.camera_off);
            let entries = self
                .last_node_scr
                .clone()
                .map(|scr| self.entries_for(&scr))
                .unwrap_or_default();
            self.advertise_video(0, &entries).await;
            self.publish(true);
        }
        self.volume = c.volume;
        self.speaker_muted = c.speaker_muted;
        self.selfview = c.selfview;
        if c.layout != self.layout {
            self.layout = c.layout;
            self.view.layout = self.layout;
            self.request_layout().await;
            self.publish(true);
        }
        self.apply_output();
    }

    /// Writes this session into the media status (or clears it when `active` is false).
    fn publish(&mut self, active: bool) {
        let view = active.then(|| {
            let mut view = self.view.clone();
            view.layers = self
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| MediaLayerView {
                    index: i as u32,
                    ssrc: l.ssrc,
                    csi: self.start.plan.video_csi,
                    state: match (&l.config, self.camera_off) {
                        (None, _) => LayerState::Off,
                        (Some(_), true) => LayerState::Avatar,
                        (Some(_), false) => LayerState::Live,
                    },
                    width: l.config.map_or(0, |c| c.width),
                    height: l.config.map_or(0, |c| c.height),
                    fps: l.config.map_or(0, |c| c.fps),
                    bitrate_kbps: l.config.map_or(0, |c| c.bitrate_kbps),
                    packets: u64::from(l.counters.packets),
                })
                .collect();
            view.audio = MediaAudioView {
                ssrc: self.start.plan.audio_ssrc,
                csi: self.start.plan.audio_csi,
                state: if self.muted {
                    AudioSendState::Muted
                } else {
                    AudioSendState::Live
                },
                packets: u64::from(self.audio.packets),
            };
            let mut receive: Vec<MediaReceiveView> = self
                .receive
                .iter()
                .map(|(ssrc, s)| MediaReceiveView {
                    ssrc: *ssrc,
                    csi: s.csi,
                    packets: s.packets,
                    frames: match (s.input, &self.output) {
                        (Input::Video(slot), Some(o)) => o.video_frames(slot),
                        _ => 0,
                    },
                })
                .collect();
            receive.sort_by_key(|r| r.ssrc);
            view.receive = receive;
            view.scr_pending = self.pending_scr.is_some();
            view
        });
        self.status.modify(|s| {
            if s.session == view {
                return false;
            }
            s.session = view;
            true
        });
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
