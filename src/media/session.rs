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
use super::graph::{GraphSpec, VIDEO_PT};
use super::gst::MediaError;
use super::layers::{self, Capture, LayerConfig};
use super::layout::{self, LayoutFamily};
use super::plan::MediaPlan;
use super::receive_pipeline::ReceivePipeline;
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
    /// Depayload what the node sends (frame counts per CSI).
    pub receive: bool,
}

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
    let mut graph = options.graph.clone();
    graph.layers = start.plan.video_ssrcs.len();
    let pipeline = SendPipeline::build(&graph, packets_tx)?;
    let (stop_tx, stop) = oneshot::channel();
    let session = Session::new(options.clone(), start, socket, status, room, events);
    let task = tokio::spawn(session.run(pipeline, packets, stop));
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

#[derive(Debug)]
struct ReceiveStream {
    csi: Option<u32>,
    packets: u64,
    pipeline: Option<ReceivePipeline>,
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
    first_frames: mpsc::UnboundedSender<u32>,
    first_frames_rx: Option<mpsc::UnboundedReceiver<u32>>,
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
    ) -> Self {
        let (muted, camera_off, layout) = {
            let c = room.borrow_and_update();
            (c.microphones_muted, c.camera_off, c.layout)
        };
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
        let (first_frames, first_frames_rx) = mpsc::unbounded_channel();
        let view = MediaView {
            call_id: start.call_id,
            node: start.node.to_string(),
            layout,
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
            muted,
            camera_off,
            layout,
            last_node_scr: None,
            pending_scr: None,
            video_sca_seqno: 0,
            audio_sca_seqno: 0,
            scr_seqno: 0,
            receive: HashMap::new(),
            first_frames,
            first_frames_rx: Some(first_frames_rx),
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
        mut stop: oneshot::Receiver<()>,
    ) {
        let call_id = self.start.call_id;
        let mut bus = Box::pin(pipeline.events());
        pipeline.set_audio_sending(!self.muted);
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

        let mut first_frames = self.first_frames_rx.take().expect("taken once");
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
                Some(_ssrc) = first_frames.recv() => {
                    if !self.render_started {
                        self.render_started = true;
                        self.event(events::RENDER_START, None);
                    }
                }
                _ = rtcp.tick() => {
                    self.send_reports().await;
                    self.publish(true);
                }
                _ = quality.tick() => self.event(events::QUALITY, None),
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

    async fn send_packet(&mut self, packet: OutPacket, out: &mut Vec<u8>) {
        let (ssrc, csi, counters) = match packet.stream {
            SendStream::Audio if self.muted => return,
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
        if packet.header.payload_type != VIDEO_PT {
            return;
        }
        let ssrc = packet.header.ssrc;
        let csi = packet.csi(self.start.ext_id);
        if !self.rx_started {
            self.rx_started = true;
            self.event(events::RX_START, None);
        }
        let receive = self.options.receive;
        let first_frames = self.first_frames.clone();
        let stream = self.receive.entry(ssrc).or_insert_with(|| {
            let pipeline = if receive {
                ReceivePipeline::start(ssrc, first_frames)
                    .map_err(|e| tracing::warn!("receive pipeline for ssrc {ssrc:#010x}: {e}"))
                    .ok()
            } else {
                None
            };
            ReceiveStream {
                csi: None,
                packets: 0,
                pipeline,
            }
        });
        stream.packets += 1;
        if csi.is_some() {
            stream.csi = csi;
        }
        if let Some(pipeline) = &stream.pipeline {
            pipeline.push(datagram);
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
        let (muted, camera_off, layout) = {
            let c = self.room.borrow_and_update();
            (c.microphones_muted, c.camera_off, c.layout)
        };
        if muted != self.muted {
            self.muted = muted;
            pipeline.set_audio_sending(!muted);
            self.advertise_audio().await;
            self.publish(true);
        }
        if camera_off != self.camera_off {
            self.camera_off = camera_off;
            let entries = self
                .last_node_scr
                .clone()
                .map(|scr| self.entries_for(&scr))
                .unwrap_or_default();
            self.advertise_video(0, &entries).await;
            self.publish(true);
        }
        if layout != self.layout {
            self.layout = layout;
            self.view.layout = self.layout;
            self.request_layout().await;
            self.publish(true);
        }
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
                    frames: s.pipeline.as_ref().map_or(0, ReceivePipeline::frames),
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
