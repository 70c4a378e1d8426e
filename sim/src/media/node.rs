//! The media node's loop: one UDP socket, demultiplexed per datagram into STUN (answered at
//! once), RTP (counted per SSRC, decoded) and RTCP (SR, SDES, BYE, the multistream SCA and SCR);
//! the node's SCR resends and scripted SCRs on timers; the decoders', encoders' and audio
//! senders' events; and meeting changes (re-assigning every session's streams). Everything that
//! changes a session happens here or under the node's lock; GStreamer state changes happen
//! outside the lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::audio::AudioSender;
use super::decode::Decoder;
use super::participants::Meeting;
use super::scr::{self, Preset};
use super::state::{Datagram, MediaNode, ReceivedScr, Serving, Teardown, measured_tones, wanted};
use super::streams::{self, Encoder};
use super::wire::{self, Kind, Mstr, RtcpPacket, Rtp, Sca, ScaEntry};
use super::{MediaScenario, PipelineEvent, gst_util};
use crate::calliope::stun;
use crate::clock::now_ms;
use crate::shutdown::Shutdown;
use crate::state::{SimState, lock};

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// A decoder that failed this many times is not restarted again.
const MAX_DECODER_STARTS: u32 = 5;
/// Audio packets sent per slot between two change notifications (one a second): waiters see
/// audio flowing without a snapshot per packet.
const AUDIO_PACKETS_PER_NOTICE: u64 = 50;

/// Binds the media node on `ip`, ephemeral port.
pub(crate) async fn bind(ip: std::net::IpAddr) -> anyhow::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    UdpSocket::bind(addr)
        .await
        .with_context(|| format!("binding the media node on {addr}"))
}

/// The loop's context.
struct Node {
    sim: Arc<SimState>,
    socket: UdpSocket,
    events: mpsc::UnboundedSender<PipelineEvent>,
    next_encoder_id: u64,
}

/// Runs the node until shutdown, then tears every pipeline down.
pub(crate) async fn run(
    socket: UdpSocket,
    mut outbox: mpsc::UnboundedReceiver<Datagram>,
    sim: Arc<SimState>,
    shutdown: Shutdown,
) {
    let (events, mut pipeline_events) = mpsc::unbounded_channel();
    let mut node = Node {
        sim,
        socket,
        events,
        next_encoder_id: 1,
    };
    let mut buf = vec![0_u8; MAX_DATAGRAM];
    let sim = Arc::clone(&node.sim);
    super::node(&sim);
    loop {
        let deadline = lock(&node.media().inner).next_deadline();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.wait() => break,
            res = node.socket.recv_from(&mut buf) => match res {
                Ok((len, from)) => node.datagram(&buf[..len], from).await,
                Err(e) => {
                    // ICMP port-unreachable from an earlier send to a closed device socket
                    // surfaces here on Linux; it says nothing about this socket.
                    tracing::debug!(error = %e, "media node receive error");
                }
            },
            Some(d) = outbox.recv() => node.send(vec![d]).await,
            Some(ev) = pipeline_events.recv() => node.pipeline_event(ev).await,
            () = sim.media.meeting_changed.notified() => node.reassign().await,
            () = timer => node.timers().await,
        }
    }
    let mut all = Teardown::default();
    {
        let mut inner = lock(&node.media().inner);
        for s in &mut inner.sessions {
            all.extend(s.take_pipelines());
        }
    }
    let n = all.len();
    all.run();
    node.media().changed();
    tracing::debug!(pipelines = n, "media node stopped");
}

impl Node {
    fn media(&self) -> &MediaNode {
        &self.sim.media
    }

    fn config(&self) -> MediaScenario {
        self.sim.with_scenario(|s| s.media.clone())
    }

    async fn send(&self, datagrams: Vec<Datagram>) {
        for (bytes, to) in datagrams {
            if let Err(e) = self.socket.send_to(&bytes, to).await {
                tracing::debug!(%to, error = %e, "media node send failed");
            }
        }
    }

    /// Counts a bad datagram on the peer's session (or the node when it has none).
    fn malformed(&self, from: SocketAddr, what: &str, error: &dyn std::fmt::Display) {
        tracing::debug!(%from, %error, "malformed {what} ignored");
        let mut inner = lock(&self.media().inner);
        match inner.sessions.iter_mut().find(|s| s.peer == from) {
            Some(s) => s.malformed += 1,
            None => inner.malformed_unattributed += 1,
        }
        drop(inner);
        self.media().changed();
    }

    async fn datagram(&mut self, d: &[u8], from: SocketAddr) {
        match wire::classify(d) {
            Kind::Stun => self.stun(d, from).await,
            Kind::Rtp => self.rtp(d, from).await,
            Kind::Rtcp => self.rtcp(d, from).await,
            Kind::Unknown => {
                let first = d.first().copied().unwrap_or_default();
                self.malformed(
                    from,
                    "datagram",
                    &format_args!("first byte {first} is not STUN, RTP or RTCP"),
                );
            }
        }
    }

    /// Answers a Binding request (the device's ICE check) with a Binding success at once.
    async fn stun(&self, d: &[u8], from: SocketAddr) {
        let Some(txid) = stun::binding_request(d) else {
            tracing::debug!(%from, len = d.len(), "STUN message that is not a Binding request ignored");
            return;
        };
        self.media()
            .binding_requests
            .fetch_add(1, Ordering::Relaxed);
        self.send(vec![(stun::binding_success(&txid, from), from)])
            .await;
        self.media().changed();
    }

    async fn rtp(&mut self, d: &[u8], from: SocketAddr) {
        let rtp = match Rtp::parse(d) {
            Ok(r) => r,
            Err(e) => return self.malformed(from, "RTP packet", &e),
        };
        let cfg = self.config();
        let decode = cfg.decode;
        let mut push = None;
        let mut start_decoder = None;
        let mut teardown = Teardown::default();
        let audio_due;
        {
            let mut inner = lock(&self.media().inner);
            let Some(session) = inner.session_for(from, rtp.ssrc).map(|s| s.id) else {
                drop(inner);
                return self.media().changed();
            };
            inner.adopt_offer(session, rtp.ssrc);
            let s = &mut inner.sessions[session];
            audio_due = s.audio_newly_due(cfg.send_audio);
            let ext_id = s.ext_id();
            let stream = s.stream_mut(rtp.ssrc);
            stream.count(
                rtp.payload_type,
                d.len(),
                rtp.payload.len(),
                rtp.csi(ext_id),
            );
            let decodable = [super::sdp::VIDEO_PT, super::sdp::AUDIO_PT];
            if decode && decodable.contains(&rtp.payload_type) {
                if stream.decoder.as_ref().is_some_and(Decoder::failed) {
                    teardown.decoders.extend(stream.decoder.take());
                }
                match &mut stream.decoder {
                    Some(dec) => push = Some(dec.buffer(rtp.timestamp, d)),
                    None if stream.decode_disabled.is_none() => start_decoder = Some(session),
                    None => {}
                }
            }
        }
        teardown.run();
        if let Some(session) = start_decoder {
            push = self
                .start_decoder(session, rtp.ssrc, rtp.payload_type, rtp.timestamp, d)
                .await;
        }
        if let Some((src, buffer)) = push {
            if let Err(e) = src.push_buffer(buffer) {
                tracing::debug!(ssrc = format_args!("0x{:08x}", rtp.ssrc), error = ?e, "decoder did not take a packet");
            }
        }
        if let Some(session) = audio_due {
            self.apply(session).await;
        }
        self.media().changed();
    }

    /// Starts the decoder of `ssrc` (video or audio from `payload_type`; restarting it after a
    /// failure, a few times at most); the first packet's buffer.
    async fn start_decoder(
        &self,
        session: usize,
        ssrc: u32,
        payload_type: u8,
        timestamp: u32,
        packet: &[u8],
    ) -> Option<(gstreamer_app::AppSrc, gstreamer::Buffer)> {
        let started = match gst_util::ensure_init().await {
            Ok(()) if payload_type == super::sdp::AUDIO_PT => {
                Decoder::start_audio(session, ssrc, measured_tones(), &self.events)
            }
            Ok(()) => Decoder::start_video(session, ssrc, &self.events),
            Err(e) => Err(e),
        };
        let mut inner = lock(&self.media().inner);
        let s = inner.sessions.get_mut(session)?;
        if s.ended {
            return None;
        }
        let stream = s.stream_mut(ssrc);
        stream.decoder_starts += 1;
        match started {
            Ok(mut dec) => {
                if stream.decoder_starts > 1 {
                    tracing::info!(
                        ssrc = format_args!("0x{ssrc:08x}"),
                        starts = stream.decoder_starts,
                        "decoder restarted"
                    );
                }
                if stream.decoder_starts >= MAX_DECODER_STARTS {
                    stream.decode_disabled =
                        Some(format!("decoder failed {MAX_DECODER_STARTS} times"));
                }
                let push = dec.buffer(timestamp, packet);
                stream.decoder = Some(dec);
                Some(push)
            }
            Err(e) => {
                tracing::warn!(ssrc = format_args!("0x{ssrc:08x}"), error = %format!("{e:#}"), "cannot decode the stream; counting its packets only");
                stream.decode_disabled = Some(format!("{e:#}"));
                None
            }
        }
    }

    async fn rtcp(&mut self, d: &[u8], from: SocketAddr) {
        let mut out = Vec::new();
        let mut teardown = Teardown::default();
        let mut serve = None;
        let mut audio_due = None;
        for item in wire::rtcp_packets(d) {
            let packet = match item {
                Ok(p) => p,
                Err(e) => {
                    self.malformed(from, "RTCP packet", &e);
                    break;
                }
            };
            let due = &mut audio_due;
            if let Err(e) =
                self.rtcp_packet(&packet, from, &mut out, &mut teardown, &mut serve, due)
            {
                self.malformed(from, "RTCP packet", &e);
            }
        }
        self.send(out).await;
        if !teardown.is_empty() {
            teardown.run();
        }
        if let Some((session, seqno)) = serve {
            self.serve(session, seqno).await;
        } else if let Some(session) = audio_due {
            self.apply(session).await;
        }
        self.media().changed();
    }

    /// Handles one RTCP packet; datagrams to send go to `out`, pipelines to stop to `teardown`,
    /// an SCR whose streams must start to `serve`, a session that is now due far-end audio to
    /// `audio_due`.
    fn rtcp_packet(
        &self,
        p: &RtcpPacket<'_>,
        from: SocketAddr,
        out: &mut Vec<Datagram>,
        teardown: &mut Teardown,
        serve: &mut Option<(usize, u16)>,
        audio_due: &mut Option<usize>,
    ) -> Result<(), wire::Malformed> {
        let cfg = self.config();
        let media = self.media();
        let mut inner = lock(&media.inner);
        let drop_acks = inner.drop_acks;
        let meeting = inner.meeting_mut().clone();
        // The SSRC that names the sender (first word of SR, RR, SDES, APP; the first BYE SSRC).
        let sender = p
            .body
            .get(..4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let Some(session) = inner.session_for(from, sender).map(|s| s.id) else {
            return Ok(());
        };
        inner.adopt_offer(session, sender);
        let s = &mut inner.sessions[session];
        if let Some(due) = s.audio_newly_due(cfg.send_audio) {
            *audio_due = Some(due);
        }
        match p.packet_type {
            wire::PT_SR => {
                let sr = wire::sender_report(p)?;
                let stream = s.stream_mut(sr.ssrc);
                stream.sender_reports += 1;
                stream.last_sr = Some(sr);
            }
            wire::PT_RR => {
                wire::receiver_report_ssrc(p)?;
                s.receiver_reports += 1;
            }
            wire::PT_SDES => {
                s.sdes += 1;
                for (ssrc, cname) in wire::sdes_cnames(p)? {
                    s.cnames.insert(ssrc, cname);
                }
            }
            wire::PT_BYE => {
                let ssrcs = wire::bye_ssrcs(p)?;
                s.byes += 1;
                tracing::info!(peer = %from, ssrcs = ?ssrcs, "RTCP BYE");
                teardown.extend(s.end());
            }
            wire::PT_APP => match wire::mstr(p) {
                None => s.rtcp_other += 1,
                Some(Err(e)) => return Err(e),
                Some(Ok(Mstr::Sca(sca))) => {
                    let kind = s.kind_of(sca.sender_ssrc);
                    tracing::info!(
                        peer = %from,
                        "{} Recv: {} ack_seqno={} total={} live={} entries={}",
                        capitalised(kind),
                        scr::sca_head(&sca),
                        sca.ack_seqno,
                        sca.total,
                        sca.live,
                        sca.entries.len()
                    );
                    if sca.ack_seqno != 0 && !s.ack_sent_scr(sca.ack_seqno) {
                        tracing::debug!(peer = %from, ack_seqno = sca.ack_seqno, "SCA acks no pending SCR of the node");
                    }
                    let advertisement =
                        kind == "video" && sca.ack_seqno == 0 && !s.saw_video_advertisement;
                    s.record_sca(sca, kind);
                    if advertisement {
                        s.saw_video_advertisement = true;
                        if cfg.auto_scr {
                            let now = Instant::now();
                            out.extend(
                                s.send_scr(media.ssrc, Preset::Three, "auto", now)
                                    .map(|(_, d)| d),
                            );
                            if cfg.scr_change_after_secs > 0 {
                                let after = Duration::from_secs(cfg.scr_change_after_secs);
                                s.script = Some((now + after, Preset::Two));
                            }
                        }
                    }
                }
                Some(Ok(Mstr::Scr(scr))) => {
                    scr::log_scr("Recv", from, &scr);
                    let seqno = scr.seqno;
                    let (plan, wanted) = match s
                        .scrs_received
                        .iter_mut()
                        .rev()
                        .find(|r| r.scr.seqno == seqno)
                    {
                        Some(r) => {
                            r.times += 1;
                            (r.plan.clone(), wanted(&r.scr.requests, &r.plan))
                        }
                        None => {
                            // Planned once, so every ack of this seqno and its streams agree.
                            let plan = streams::plan(&scr.requests, cfg.send_max_fs, cfg.send_fps);
                            let wanted = wanted(&scr.requests, &plan);
                            s.record_scr(ReceivedScr {
                                at_ms: now_ms(),
                                scr,
                                plan: plan.clone(),
                                times: 1,
                                acks_sent: 0,
                                served: false,
                            });
                            (plan, wanted)
                        }
                    };
                    if drop_acks {
                        tracing::info!(peer = %from, seqno, "SCR not acknowledged (admin drops acks)");
                        return Ok(());
                    }
                    let assigned = meeting.assign(&wanted);
                    out.push((node_sca(s, media.ssrc, seqno, &plan, &assigned), from));
                    let newest = s.scrs_received.last().is_some_and(|r| r.scr.seqno == seqno);
                    if let Some(r) = s
                        .scrs_received
                        .iter_mut()
                        .rev()
                        .find(|r| r.scr.seqno == seqno)
                    {
                        r.acks_sent += 1;
                        // A repeated seqno is acked again without reconfiguring; an older SCR
                        // acked late does not replace the newest.
                        if newest && !r.served && cfg.send_streams {
                            r.served = true;
                            *serve = Some((session, seqno));
                        }
                    }
                }
            },
            _ => s.rtcp_other += 1,
        }
        Ok(())
    }

    /// Replaces the session's streams with those of its SCR `seqno`: every earlier stream stops,
    /// one starts per request with a participant.
    async fn serve(&mut self, session: usize, seqno: u16) {
        let stale = {
            let mut inner = lock(&self.media().inner);
            let Some(s) = inner.sessions.get_mut(session).filter(|s| !s.ended) else {
                return;
            };
            let Some(r) = s.scrs_received.iter().rev().find(|r| r.scr.seqno == seqno) else {
                return;
            };
            let serving = Serving::new(seqno, &r.scr, r.plan.clone());
            s.serve(serving)
        };
        stale.run();
        self.apply(session).await;
    }

    /// Re-assigns every live session's streams after a meeting change.
    async fn reassign(&mut self) {
        let live: Vec<usize> = {
            let inner = lock(&self.media().inner);
            inner
                .sessions
                .iter()
                .filter(|s| !s.ended)
                .map(|s| s.id)
                .collect()
        };
        for session in live {
            self.apply(session).await;
        }
        self.media().changed();
    }

    /// Brings `session`'s streams in line with the meeting: re-assigns in place, stops what lost
    /// its participant, starts what gained one (outside the lock).
    async fn apply(&mut self, session: usize) {
        let (stop, start) = {
            let mut inner = lock(&self.media().inner);
            let meeting: Meeting = inner.meeting_mut().clone();
            let ssrc = self.media().ssrc;
            let Some(s) = inner.sessions.get_mut(session) else {
                return;
            };
            s.reconcile(&meeting, ssrc)
        };
        stop.run();
        if start.is_empty() {
            return;
        }
        // Without GStreamer every stream records why it is not sent.
        let init = gst_util::ensure_init().await.map_err(|e| format!("{e:#}"));
        let mut video = Vec::new();
        for (index, key, participant) in start.video {
            let id = self.next_id();
            let started = match &init {
                Ok(()) => Encoder::start(id, session, key, participant, &self.events),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            video.push((index, started));
        }
        let mut audio = Vec::new();
        for (slot, participant) in start.audio {
            let id = self.next_id();
            let started = match &init {
                Ok(()) => AudioSender::start(id, session, slot, participant, &self.events),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            audio.push((slot, started));
        }
        let mut unused = Teardown::default();
        {
            let mut inner = lock(&self.media().inner);
            if let Some(s) = inner.sessions.get_mut(session) {
                for (index, started) in video {
                    unused.encoders.extend(s.attach_video(index, started));
                }
                for (slot, started) in audio {
                    unused.audio.extend(s.attach_audio(slot, started));
                }
            }
        }
        // Ended (or re-served) while they started: stop them outside the lock.
        unused.run();
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_encoder_id;
        self.next_encoder_id += 1;
        id
    }

    async fn pipeline_event(&mut self, ev: PipelineEvent) {
        let mut out = Vec::new();
        let mut notify = true;
        {
            let mut inner = lock(&self.media().inner);
            match ev {
                PipelineEvent::Frame {
                    session,
                    ssrc,
                    width,
                    height,
                    pts,
                } => {
                    if let Some(s) = inner.sessions.get_mut(session) {
                        s.stream_mut(ssrc).frame(width, height, pts);
                    }
                }
                PipelineEvent::AudioLevels {
                    session,
                    ssrc,
                    levels,
                } => {
                    if let Some(s) = inner.sessions.get_mut(session) {
                        s.stream_mut(ssrc).audio = Some(levels);
                    }
                }
                PipelineEvent::DecodeError {
                    session,
                    ssrc,
                    message,
                } => {
                    tracing::warn!(ssrc = format_args!("0x{ssrc:08x}"), error = %message, "decode error; the decoder restarts on the next packet");
                    if let Some(s) = inner.sessions.get_mut(session) {
                        s.stream_mut(ssrc).decode_errors += 1;
                    }
                }
                PipelineEvent::Encoded {
                    session,
                    encoder,
                    participant: Some(participant),
                    packet,
                } => {
                    if let Some(s) = inner.sessions.get_mut(session).filter(|s| !s.ended) {
                        let ext_id = s.ext_id();
                        let peer = s.peer;
                        out = streams::fan_out(
                            &packet,
                            encoder,
                            Some(participant),
                            &mut s.streams_sent,
                            ext_id,
                        )
                        .into_iter()
                        .map(|d| (d, peer))
                        .collect();
                    }
                }
                PipelineEvent::Encoded {
                    session,
                    encoder,
                    participant: None,
                    packet,
                } => {
                    notify = false;
                    if let Some(s) = inner.sessions.get_mut(session).filter(|s| !s.ended) {
                        let ext_id = s.ext_id();
                        let peer = s.peer;
                        if let Some(a) = s
                            .sent_audio
                            .iter_mut()
                            .find(|a| a.active && a.sender == Some(encoder))
                        {
                            let csi = a.csi;
                            out.extend(
                                streams::rewrite(&packet, a, csi, ext_id).map(|d| (d, peer)),
                            );
                            notify = a.packets % AUDIO_PACKETS_PER_NOTICE == 1;
                        }
                    }
                }
                PipelineEvent::EncodeError {
                    session,
                    encoder,
                    message,
                } => {
                    tracing::warn!(encoder, error = %message, "encoder error; its streams stop");
                    if let Some(s) = inner.sessions.get_mut(session) {
                        for t in s
                            .streams_sent
                            .iter_mut()
                            .filter(|t| t.encoder == Some(encoder))
                        {
                            t.error = Some(message.clone());
                        }
                        for a in s
                            .sent_audio
                            .iter_mut()
                            .filter(|a| a.sender == Some(encoder))
                        {
                            a.error = Some(message.clone());
                        }
                    }
                }
            }
        }
        self.send(out).await;
        if notify {
            self.media().changed();
        }
    }

    async fn timers(&self) {
        let change_after = Duration::from_secs(self.config().scr_change_after_secs);
        let now = Instant::now();
        let out: Vec<Datagram> = {
            let mut inner = lock(&self.media().inner);
            let ssrc = self.media().ssrc;
            inner
                .sessions
                .iter_mut()
                .filter(|s| !s.ended)
                .flat_map(|s| s.on_timers(ssrc, now, change_after))
                .collect()
        };
        self.send(out).await;
        self.media().changed();
    }
}

/// The node's SCA acknowledging the device's SCR `seqno`: one entry per request (state 0 when
/// served, 2 when no participant is left for it, 3 when it cannot be served), total = live = the
/// requests served.
fn node_sca(
    s: &mut super::state::Session,
    node_ssrc: u32,
    seqno: u16,
    plan: &[streams::Planned],
    assigned: &[Option<u8>],
) -> Vec<u8> {
    let state = |i: usize| match (plan[i].size, assigned.get(i).copied().flatten()) {
        (None, _) => 3,
        (Some(_), None) => 2,
        (Some(_), Some(_)) => 0,
    };
    let served = (0..plan.len()).filter(|&i| state(i) == 0).count();
    let served = u8::try_from(served).unwrap_or(u8::MAX);
    s.sca_seqno = wire::next_seqno(s.sca_seqno);
    let sca = Sca {
        sender_ssrc: node_ssrc,
        seqno: s.sca_seqno,
        media_ssrc: 0,
        ack_seqno: seqno,
        total: served,
        live: served,
        entries: plan
            .iter()
            .enumerate()
            .map(|(i, p)| ScaEntry {
                srcid: p.srcid,
                index: u8::try_from(p.index).unwrap_or(u8::MAX),
                state: state(i),
            })
            .collect(),
    };
    tracing::info!(
        peer = %s.peer,
        "Video Send: {} ack_seqno={} total={} live={} entries={}",
        scr::sca_head(&sca),
        sca.ack_seqno,
        sca.total,
        sca.live,
        sca.entries.len()
    );
    sca.encode()
}

fn capitalised(kind: &str) -> &'static str {
    match kind {
        "audio" => "Audio",
        "video" => "Video",
        _ => "Unknown",
    }
}
