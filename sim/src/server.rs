//! Wiring: binds every listener, builds the routers, spawns the tasks, and hands back a [`SimHandle`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::activation::ActivationRecord;
use crate::admin::{self, AdminState};
use crate::alt::{self, AltControl, AltMode};
use crate::faults::{self, Fault};
use crate::meeting_server::{self, MeetingServer};
use crate::mercury::{
    AckRecord, ConnectionInfo, ConnectionState, DeliveredEvent, PongMode, ReceivedFrame, SentFrame,
};
use crate::recorder::{self, ReceivedRequest};
use crate::scenario::{MAX_AUTH_TIMEOUT_SECS, Scenario, WdmFeatures};
use crate::shutdown::{self, Trigger};
use crate::state::{AppState, Endpoints, ListenerCtx, SimState};
use crate::udp::{self, UdpDatagram};
use crate::{
    activation, auth, calendar, calliope, gds, identity, locus, media, mercury, tls, u2c, wdm,
};

/// How long [`SimHandle::shutdown`] waits for the tasks before aborting them.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// How to start the simulator. [`SimOptions::new`] gives loopback, ephemeral ports and the default scenario.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address of every listener; must be loopback because the admin API has no authentication.
    pub bind: IpAddr,
    /// HTTPS port of the main listener (GDS, activation; certificate from `ca.pem`); 0 picks a free one.
    pub https_port: u16,
    /// HTTPS port of the proxy listener (every service; certificate from `proxy-ca.pem`); 0: free one.
    pub proxy_port: u16,
    /// HTTPS port of the alt listener (as proxy; the hostmap's primary host, switchable); 0: free one.
    pub alt_port: u16,
    /// Admin API port (plain HTTP); 0 picks a free one.
    pub admin_port: u16,
    /// One UDP socket per entry; 0 picks a free port.
    pub udp_ports: Vec<u16>,
    /// HTTPS port of the Meeting Server events listener (certificate from `cms-ca.pem`); 0: free one.
    pub meeting_server_port: u16,
    /// Where `ca.pem` and `sim.json` are written; created if missing.
    pub state_dir: PathBuf,
    pub scenario: Scenario,
}

impl SimOptions {
    /// `127.0.0.1`, ephemeral HTTPS (main, proxy, alt) and admin ports, one ephemeral UDP socket, the default scenario.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            https_port: 0,
            proxy_port: 0,
            alt_port: 0,
            admin_port: 0,
            udp_ports: vec![0],
            meeting_server_port: 0,
            state_dir: state_dir.into(),
            scenario: Scenario::default(),
        }
    }
}

/// Where everything listens; served at `GET /admin/info`, written to `state_dir/sim.json` and
/// printed by the binary on start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimInfo {
    /// The main HTTPS listener (certificate from `ca`).
    pub https: SocketAddr,
    /// The proxy HTTPS listener (certificate from `proxy_ca`).
    pub proxy: SocketAddr,
    /// The alt HTTPS listener (certificate from `proxy_ca`; the hostmap's primary host).
    pub alt: SocketAddr,
    pub admin: SocketAddr,
    pub udp: Vec<SocketAddr>,
    /// Absolute path of the CA certificate (PEM) to trust.
    pub ca: String,
    /// Absolute path of the proxy CA certificate (PEM), the one the service data's `trustList` carries.
    pub proxy_ca: String,
    /// `https://localhost:<main port>`.
    pub base_url: String,
    pub gds_url: String,
    /// `base_url + "/activation"`.
    pub activation_url: String,
    /// `https://localhost:<proxy port>`: base of the service URLs activation hands out.
    pub service_base_url: String,
    pub admin_url: String,
    /// The Meeting Server events listener (certificate from `cms_ca`).
    pub meeting_server: SocketAddr,
    /// `https://localhost:<meeting server port>`.
    pub meeting_server_url: String,
    /// Absolute path of the Meeting Server CA certificate (PEM); `cms-client.pem` and
    /// `cms-client-key.pem` (a client certificate it signed, PKCS#8 key) sit next to it.
    pub cms_ca: String,
}

/// A running simulator. Dropping it stops the tasks without waiting; [`SimHandle::shutdown`] waits.
#[derive(Debug)]
pub struct SimHandle {
    info: SimInfo,
    ca_pem: String,
    ca_path: PathBuf,
    proxy_ca_pem: String,
    proxy_ca_path: PathBuf,
    /// The shared state; the calendar's handle methods live in `calendar::handle`.
    pub(crate) sim: Arc<SimState>,
    /// The Meeting Server; its handle methods live in `meeting_server::handle`.
    pub(crate) cms: Arc<MeetingServer>,
    trigger: Trigger,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts every service and returns once all listeners are bound.
pub async fn start(opts: SimOptions) -> anyhow::Result<SimHandle> {
    if !opts.bind.is_loopback() {
        bail!(
            "bind address {} is not loopback: the admin API has no authentication, so the simulator \
             serves loopback only",
            opts.bind
        );
    }
    opts.scenario.validate().context("invalid scenario")?;
    crate::test_run::capture_log_if_unobserved();

    let material = tls::generate()?;
    let proxy_material = tls::generate_with_ca(tls::PROXY_CA_COMMON_NAME)?;
    tokio::fs::create_dir_all(&opts.state_dir)
        .await
        .with_context(|| format!("creating state directory {}", opts.state_dir.display()))?;
    // Absolute, so clients started from another directory can use the path from sim.json.
    let state_dir = tokio::fs::canonicalize(&opts.state_dir)
        .await
        .with_context(|| format!("resolving state directory {}", opts.state_dir.display()))?;
    let ca_path = state_dir.join("ca.pem");
    write_atomic(&ca_path, material.ca_pem.as_bytes()).await?;
    let proxy_ca_path = state_dir.join("proxy-ca.pem");
    write_atomic(&proxy_ca_path, proxy_material.ca_pem.as_bytes()).await?;

    // Switchable like the alt host, so a front-end restart can close them (`crate::restart`).
    let https_control = Arc::new(AltControl::bind_named(
        SocketAddr::new(opts.bind, opts.https_port),
        "https",
    )?);
    let proxy_control = Arc::new(AltControl::bind_named(
        SocketAddr::new(opts.bind, opts.proxy_port),
        "proxy",
    )?);
    let alt_control = Arc::new(AltControl::bind(SocketAddr::new(opts.bind, opts.alt_port))?);
    let admin_listener = bind_tcp(SocketAddr::new(opts.bind, opts.admin_port), "admin").await?;
    let cms_prepared = meeting_server::Prepared::new(
        &state_dir,
        SocketAddr::new(opts.bind, opts.meeting_server_port),
    )
    .await?;
    let mut udp_sockets = Vec::with_capacity(opts.udp_ports.len());
    for port in &opts.udp_ports {
        let addr = SocketAddr::new(opts.bind, *port);
        let socket = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding UDP socket on {addr}"))?;
        udp_sockets.push(socket);
    }

    let media_socket = media::bind(opts.bind).await?;
    let media_node = media_socket.local_addr().context("media node address")?;
    let (calliope_state, calliope_sockets) =
        calliope::bind(&opts.scenario.calliope, opts.bind).await?;
    let calliope_state = Arc::new(calliope_state);

    let https = https_control.addr();
    let proxy = proxy_control.addr();
    let alt = alt_control.addr();
    let admin = admin_listener
        .local_addr()
        .context("admin listener address")?;
    let udp = udp_sockets
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .context("UDP socket address")?;
    // `localhost` so the URL's host matches the certificate's DNS name, as a real cloud URL would.
    let base_url = format!("https://localhost:{}", https.port());
    let service_base_url = format!("https://localhost:{}", proxy.port());
    let alt_base_url = format!("https://localhost:{}", alt.port());
    let info = SimInfo {
        https,
        proxy,
        alt,
        admin,
        udp,
        ca: ca_path.to_string_lossy().into_owned(),
        proxy_ca: proxy_ca_path.to_string_lossy().into_owned(),
        gds_url: format!("{base_url}/gds"),
        activation_url: format!("{base_url}/activation"),
        base_url: base_url.clone(),
        service_base_url: service_base_url.clone(),
        admin_url: format!("http://{admin}"),
        meeting_server: cms_prepared.addr,
        meeting_server_url: cms_prepared.url(),
        cms_ca: cms_prepared.ca_path.to_string_lossy().into_owned(),
    };
    let info_json = serde_json::to_vec_pretty(&info).context("serialising sim.json")?;
    write_atomic(&state_dir.join("sim.json"), &info_json).await?;

    let endpoints = Endpoints {
        service_base: service_base_url.clone(),
        proxy_port: proxy.port(),
        alt_port: alt.port(),
        proxy_ca_pem: proxy_material.ca_pem.clone(),
        media_node,
    };
    let (media_node, media_outbox) = media::MediaNode::new(media_node);
    let sim = Arc::new(SimState::new(
        opts.scenario,
        endpoints,
        Arc::clone(&alt_control),
        [
            Arc::clone(&https_control),
            Arc::clone(&proxy_control),
            Arc::clone(&alt_control),
        ],
        Arc::clone(&calliope_state),
        media_node,
    ));
    let (trigger, shutdown) = shutdown::channel();
    let app = |name: &'static str, base_url: String| AppState {
        sim: Arc::clone(&sim),
        shutdown: shutdown.clone(),
        listener: Arc::new(ListenerCtx { name, base_url }),
    };
    let main_router = cloud_router(app("main", base_url), None);
    let proxy_router = cloud_router(app("proxy", service_base_url), None);
    let alt_router = cloud_router(app("alt", alt_base_url), Some(Arc::clone(&alt_control)));
    let (cms, cms_admin, cms_task) = cms_prepared.launch(Arc::clone(&sim), shutdown.clone())?;
    let admin_router = admin::router(AdminState {
        sim: Arc::clone(&sim),
        info: Arc::new(info.clone()),
    })
    .merge(cms_admin)
    .merge(calendar::admin_router(Arc::clone(&sim)))
    .merge(locus::admin_router(Arc::clone(&sim)))
    .merge(calliope::admin_router(Arc::clone(&sim)))
    .merge(media::admin_router(Arc::clone(&sim)));
    // The xtls nodes use the main certificate (it names 127.0.0.1), without ALPN.
    let mut xtls_config = (*material.server_config).clone();
    xtls_config.alpn_protocols.clear();

    let mut tasks = vec![
        tokio::spawn(alt::run(
            https_control,
            TlsAcceptor::from(material.server_config),
            main_router,
            shutdown.clone(),
        )),
        tokio::spawn(alt::run(
            proxy_control,
            TlsAcceptor::from(Arc::clone(&proxy_material.server_config)),
            proxy_router,
            shutdown.clone(),
        )),
        tokio::spawn(alt::run(
            alt_control,
            TlsAcceptor::from(proxy_material.server_config),
            alt_router,
            shutdown.clone(),
        )),
        tokio::spawn(crate::http::serve(
            admin_listener,
            None,
            admin_router,
            shutdown.clone(),
            "admin",
        )),
        cms_task,
        tokio::spawn(media::run(
            media_socket,
            media_outbox,
            Arc::clone(&sim),
            shutdown.clone(),
        )),
        calliope::spawn(
            calliope_state,
            calliope_sockets,
            Arc::new(xtls_config),
            shutdown.clone(),
        ),
    ];
    for socket in udp_sockets {
        tasks.push(tokio::spawn(udp::run(
            socket,
            Arc::clone(&sim),
            shutdown.clone(),
        )));
    }
    // Only the tasks hold tokens now, so `Trigger::wait_all` ends when the last task does.
    drop(shutdown);

    tracing::info!(
        https = %info.https,
        proxy = %info.proxy,
        alt = %info.alt,
        admin = %info.admin,
        meeting_server = %info.meeting_server,
        udp = ?info.udp,
        ca = %info.ca,
        "roomd-sim started"
    );
    Ok(SimHandle {
        info,
        ca_pem: material.ca_pem,
        ca_path,
        proxy_ca_pem: proxy_material.ca_pem,
        proxy_ca_path,
        sim,
        cms,
        trigger,
        tasks,
    })
}

/// The cloud services, one per path prefix; the same router serves every HTTPS listener (main, proxy,
/// alt). A new service is a module with a `router()` and one `.nest` line here; services after
/// activation go under `protected`.
fn cloud_router(app: AppState, alt: Option<Arc<AltControl>>) -> Router {
    let sim = Arc::clone(&app.sim);
    let bearer = middleware::from_fn_with_state(Arc::clone(&sim), auth::require_bearer);
    let protected = Router::new()
        .nest("/u2c", u2c::router())
        .nest("/wdm/api/v1", wdm::router())
        .nest("/calendar/api/v1", calendar::service_router())
        .nest("/kms", calendar::kms_router())
        .nest("/locus/api/v1", locus::service_router())
        .nest("/calliope", calliope::service_router())
        .layer(bearer);
    let mut router = Router::new()
        .nest("/gds", gds::router())
        .nest("/activation", activation::router())
        .nest("/identity", identity::router())
        .merge(protected)
        .route(
            "/mercury/registrations/{id}/messages",
            get(mercury::upgrade),
        )
        .fallback(not_found)
        // The last layer runs first: record everything, then (alt only) fail the host, then maybe
        // answer from a fault.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&sim),
            faults::inject,
        ));
    if let Some(alt) = alt {
        router = router.layer(middleware::from_fn_with_state(alt, alt::gate));
    }
    let name = app.listener.name;
    router
        .layer(middleware::from_fn_with_state(
            (sim, name),
            recorder::record,
        ))
        .with_state(app)
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "message": "no such route in roomd-sim" })),
    )
}

async fn bind_tcp(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener on {addr}"))
}

/// Writes via a temporary file and rename, so a reader polling for the file never sees half of it.
async fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, data)
        .await
        .with_context(|| format!("writing {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

impl SimHandle {
    /// The main HTTPS listener (GDS and activation; every service is routed, but the device is meant
    /// to use this one only until activation). Its certificate chains to [`SimHandle::ca_pem`].
    pub fn https_addr(&self) -> SocketAddr {
        self.info.https
    }

    /// The proxy HTTPS listener: every post-activation service; certificate from the proxy CA.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.info.proxy
    }

    /// The alt HTTPS listener: the hostmap's primary host; certificate from the proxy CA.
    pub fn alt_addr(&self) -> SocketAddr {
        self.info.alt
    }

    /// `https://localhost:<proxy port>`, the base of the service URLs in the service data.
    pub fn service_base_url(&self) -> String {
        self.info.service_base_url.clone()
    }

    /// `base_url() + "/activation"`.
    pub fn activation_url(&self) -> String {
        self.info.activation_url.clone()
    }

    /// PEM of the proxy CA (the `trustList` entry).
    pub fn proxy_ca_pem(&self) -> &str {
        &self.proxy_ca_pem
    }

    /// `state_dir/proxy-ca.pem` (absolute).
    pub fn proxy_ca_path(&self) -> &Path {
        &self.proxy_ca_path
    }

    /// Switches the alt host: `serve`, `503` or `refuse` (as `POST /admin/hosts/alt`). Takes effect
    /// before it returns. Errors on an unknown mode or when the port cannot be bound again.
    pub fn set_alt_mode(&self, mode: &str) -> anyhow::Result<()> {
        self.sim.alt.set_mode(AltMode::parse(mode)?)
    }

    /// Restarts the cloud's front ends (as `POST /admin/restart`): the HTTPS listeners close and
    /// drop every connection and event socket, then bind the same ports again after `down`; the
    /// state is kept. Returns once they are closed. Errors while a restart is under way.
    pub fn restart(&self, down: std::time::Duration) -> anyhow::Result<crate::restart::Restarted> {
        self.sim.restart(down)
    }

    /// The alt host's mode: `serve`, `503` or `refuse`.
    pub fn alt_mode(&self) -> String {
        self.sim.alt.mode().as_str().to_owned()
    }

    /// Activation attempts so far, oldest first (as `GET /admin/activations`).
    pub fn activations(&self) -> Vec<ActivationRecord> {
        self.sim.activation.records()
    }

    /// Makes a code usable again: clears used, locked and the failure count (as
    /// `POST /admin/activation/reset`). False when no scenario device has this activation id.
    pub fn reset_activation(&self, activation_id: &str) -> bool {
        self.sim.activation.reset(activation_id)
    }

    /// Every access token issued so far becomes invalid (as `POST /admin/tokens/expire-access`).
    pub fn expire_access_tokens(&self) {
        self.sim.tokens.expire_access();
    }

    /// Every refresh token issued so far is rejected (as `POST /admin/tokens/revoke-refresh`).
    pub fn revoke_refresh_tokens(&self) {
        self.sim.tokens.revoke_refresh();
    }

    /// (access, refresh) tokens ever issued, oldest first (as `GET /admin/tokens`).
    pub fn tokens(&self) -> (Vec<String>, Vec<String>) {
        self.sim.tokens.all()
    }

    /// Registered WDM devices as the service answers them (as `GET /admin/wdm/devices`).
    pub fn wdm_devices(&self) -> Vec<serde_json::Value> {
        self.sim
            .wdm
            .list(&format!("wss://localhost:{}", self.info.proxy.port()))
    }

    /// Forgets a WDM device, so the agent's next refresh sees 404 (as
    /// `DELETE /admin/wdm/devices/{id}`). False when there is no such device.
    pub fn delete_wdm_device(&self, id: &str) -> bool {
        self.sim.wdm.delete(id)
    }

    /// Replaces the features of every device (new etags) and of future registrations (as
    /// `PUT /admin/wdm/features`): `{"developer":[{"key","val"}...],"entitlement":[..],"user":[..]}`.
    pub fn set_wdm_features(&self, features: serde_json::Value) -> anyhow::Result<()> {
        self.sim.set_wdm_features(WdmFeatures::from_json(features)?);
        Ok(())
    }

    /// The admin API listener (plain HTTP).
    pub fn admin_addr(&self) -> SocketAddr {
        self.info.admin
    }

    /// One address per UDP socket, in `udp_ports` order.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.info.udp.clone()
    }

    /// PEM of the test CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `state_dir/ca.pem` (absolute).
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// `https://localhost:<port>`.
    pub fn base_url(&self) -> String {
        self.info.base_url.clone()
    }

    /// `base_url() + "/gds"`.
    pub fn gds_url(&self) -> String {
        self.info.gds_url.clone()
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_url(&self) -> String {
        self.info.admin_url.clone()
    }

    /// Everything `GET /admin/info` reports.
    pub fn info(&self) -> &SimInfo {
        &self.info
    }

    /// HTTPS requests received so far, oldest first (as `GET /admin/requests`).
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.sim.requests.snapshot()
    }

    /// Forgets the recorded HTTPS requests (as `DELETE /admin/requests`).
    pub fn clear_received(&self) {
        self.sim.requests.clear();
    }

    /// Sets the GDS `serviceState` (as `POST /admin/gds`).
    pub fn set_gds_state(&self, state: &str) {
        self.sim.set_gds_state(state);
    }

    /// The scenario in force (as `GET /admin/scenario`).
    pub fn scenario(&self) -> Scenario {
        self.sim.scenario()
    }

    /// Replaces the scenario after validating it (as `PUT /admin/scenario`).
    pub fn set_scenario(&self, scenario: Scenario) -> anyhow::Result<()> {
        scenario.validate()?;
        self.sim.replace_scenario(scenario);
        Ok(())
    }

    /// Arms a fault (as `POST /admin/faults`).
    pub fn arm_fault(&self, fault: Fault) -> anyhow::Result<()> {
        self.sim.faults.arm(fault)
    }

    /// Disarms every fault (as `DELETE /admin/faults`).
    pub fn clear_faults(&self) {
        self.sim.faults.clear();
    }

    /// Sends one text frame, byte for byte, to the online mercury socket of every registration;
    /// returns how many took it (as `POST /admin/events`).
    pub fn push_event(&self, text: &str) -> usize {
        mercury::push_raw(&self.sim, None, text).len()
    }

    /// Open (not yet closed) mercury sockets, authorizing ones included (as `GET /admin/ws`).
    pub fn ws_connected(&self) -> usize {
        self.sim.mercury.open_count()
    }

    /// Text of every frame the mercury clients sent, oldest first (as `GET /admin/ws/received`).
    pub fn ws_received(&self) -> Vec<String> {
        self.sim
            .mercury
            .received()
            .into_iter()
            .map(|f| f.text)
            .collect()
    }

    /// Closes every open mercury socket with `code` and `reason`; how many (as `POST /admin/ws/close`).
    pub fn close_websockets(&self, code: u16, reason: &str) -> anyhow::Result<usize> {
        self.sim.mercury.close(None, code, reason)
    }

    /// Closes one open mercury socket; false when it is not open (as `POST /admin/mercury/close`).
    pub fn close_websocket(
        &self,
        connection: u64,
        code: u16,
        reason: &str,
    ) -> anyhow::Result<bool> {
        Ok(self.sim.mercury.close(Some(connection), code, reason)? > 0)
    }

    /// Drops every open mercury socket's TCP connection without a close frame (the client sees
    /// 1006); how many (as `POST /admin/ws/close {"abort":true}`).
    pub fn abort_websockets(&self) -> usize {
        self.sim.mercury.abort(None)
    }

    /// Drops one open mercury socket without a close frame; false when it is not open.
    pub fn abort_websocket(&self, connection: u64) -> bool {
        self.sim.mercury.abort(Some(connection)) > 0
    }

    /// Wraps `data` (`{"eventType":..,..}`) in an event frame for the online socket of every
    /// registration (as `POST /admin/mercury/events`). Empty when none is online: the event is
    /// dropped. Errors when `data` has no string `eventType`.
    pub fn mercury_push(&self, data: serde_json::Value) -> anyhow::Result<Vec<DeliveredEvent>> {
        Ok(mercury::push(&self.sim, None, &[data])?.delivered)
    }

    /// As [`SimHandle::mercury_push`], to one registration (WDM device id) only.
    pub fn mercury_push_to(
        &self,
        registration: &str,
        data: serde_json::Value,
    ) -> anyhow::Result<Vec<DeliveredEvent>> {
        Ok(mercury::push(&self.sim, Some(registration), &[data])?.delivered)
    }

    /// Several events, delivered in order (as `POST /admin/mercury/events {"events":[..]}`).
    pub fn mercury_push_batch(
        &self,
        datas: &[serde_json::Value],
    ) -> anyhow::Result<Vec<DeliveredEvent>> {
        Ok(mercury::push(&self.sim, None, datas)?.delivered)
    }

    /// `text` byte for byte to every online socket; the connection ids it reached (as
    /// `POST /admin/mercury/raw {"text":..}`). Uses no sequence number.
    pub fn mercury_push_raw(&self, text: &str) -> Vec<u64> {
        mercury::push_raw(&self.sim, None, text)
    }

    /// A valid JSON event frame of exactly `bytes` bytes (no `sequenceNumber`, so dropping it
    /// leaves no gap) to every online socket (as `POST /admin/mercury/raw {"oversized_bytes":..}`).
    pub fn mercury_push_oversized(
        &self,
        bytes: usize,
        tracking_id: &str,
    ) -> anyhow::Result<Vec<u64>> {
        mercury::push_oversized(&self.sim, None, bytes, Some(tracking_id))
    }

    /// Sends `{"id","type":"shutdown"}` to every socket receiving events (as
    /// `POST /admin/mercury/shutdown`); each keeps its events until its registration's next socket
    /// is online, then gets 4001 "replaced after switchover".
    pub fn mercury_shutdown(&self) -> Vec<SentFrame> {
        self.sim.mercury.shutdown(None)
    }

    /// `answer` (default), `withhold` or `mismatch` (as `POST /admin/mercury/pongs`).
    pub fn mercury_set_pong_mode(&self, mode: &str) -> anyhow::Result<()> {
        self.sim.mercury.set_pong_mode(PongMode::parse(mode)?);
        Ok(())
    }

    /// The pong mode in force.
    pub fn mercury_pong_mode(&self) -> String {
        self.sim.mercury.pong_mode().as_str().to_owned()
    }

    /// Stalls (or resumes) every open socket: no reads, no writes, TCP kept open; how many (as
    /// `POST /admin/mercury/stall`). Frames queued meanwhile are written on resume.
    pub fn mercury_stall(&self, stalled: bool) -> usize {
        self.sim.mercury.stall(None, stalled)
    }

    /// As [`SimHandle::mercury_stall`] for one socket; false when it is not open.
    pub fn mercury_stall_connection(&self, connection: u64, stalled: bool) -> bool {
        self.sim.mercury.stall(Some(connection), stalled) > 0
    }

    /// The next push's first event skips `count` extra sequence numbers on every socket it reaches
    /// (as `POST /admin/mercury/skip-sequence`).
    pub fn mercury_skip_sequence(&self, count: u64) {
        self.sim.mercury.skip_sequence(count);
    }

    /// Authorization timeout for sockets opened from now on (as `PUT /admin/mercury/auth-timeout`);
    /// must be more than 0 and at most one day.
    pub fn mercury_set_auth_timeout(&self, timeout: Duration) -> anyhow::Result<()> {
        if timeout.is_zero() || timeout > Duration::from_secs(MAX_AUTH_TIMEOUT_SECS) {
            bail!("auth timeout must be more than 0 and at most {MAX_AUTH_TIMEOUT_SECS} s");
        }
        self.sim.mercury.set_auth_timeout(timeout);
        Ok(())
    }

    /// Every socket, oldest first (as `GET /admin/mercury/connections`).
    pub fn mercury_connections(&self) -> Vec<ConnectionInfo> {
        self.sim.mercury.connections()
    }

    /// Events handed to sockets, of one registration or all, oldest first, each marked `acked`
    /// (as `GET /admin/mercury/delivered`).
    pub fn mercury_delivered(&self, registration: Option<&str>) -> Vec<DeliveredEvent> {
        self.sim.mercury.delivered(registration)
    }

    /// Acks the clients sent, oldest first (as `GET /admin/mercury/acks`).
    pub fn mercury_acked(&self) -> Vec<AckRecord> {
        self.sim.mercury.acks()
    }

    /// Frames the clients sent, oldest first (as `GET /admin/mercury/received`).
    pub fn mercury_received(&self) -> Vec<ReceivedFrame> {
        self.sim.mercury.received()
    }

    /// Sets one WDM feature toggle on every device (`kind`: `DEV`, `USER` or `ENTITLEMENT`,
    /// case-insensitive) and pushes `featureToggle_update` (as `POST /admin/mercury/feature-toggle`).
    pub fn mercury_feature_toggle(
        &self,
        key: &str,
        val: &str,
        kind: &str,
    ) -> anyhow::Result<Vec<DeliveredEvent>> {
        Ok(mercury::feature_toggle(&self.sim, key, val, kind)?.delivered)
    }

    /// Waits until `check` holds for the socket list, re-checking on every mercury change (no
    /// polling); returns the list. Fails after `timeout`.
    pub async fn wait_connections(
        &self,
        mut check: impl FnMut(&[ConnectionInfo]) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ConnectionInfo>> {
        self.sim
            .mercury
            .wait(timeout, "mercury connections", |hub| {
                let conns = hub.connections();
                check(&conns).then_some(conns)
            })
            .await
    }

    /// Waits until socket `connection` satisfies `check`; fails after `timeout`.
    pub async fn wait_connection(
        &self,
        connection: u64,
        mut check: impl FnMut(&ConnectionInfo) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<ConnectionInfo> {
        let what = format!("mercury connection {connection}");
        self.sim
            .mercury
            .wait(timeout, &what, |hub| {
                hub.connections()
                    .into_iter()
                    .find(|c| c.id == connection && check(c))
            })
            .await
    }

    /// Waits until a socket is `online` and returns the newest such (a socket that got `shutdown`
    /// is `shutting-down`, so after a shutdown this is its successor).
    pub async fn wait_mercury_online(&self, timeout: Duration) -> anyhow::Result<ConnectionInfo> {
        self.sim
            .mercury
            .wait(timeout, "an online mercury socket", |hub| {
                hub.connections()
                    .into_iter()
                    .rev()
                    .find(|c| c.state == ConnectionState::Online)
            })
            .await
    }

    /// Waits until the client acked `message_id`; fails after `timeout`.
    pub async fn wait_acked(
        &self,
        message_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<AckRecord> {
        let what = format!("an ack of {message_id}");
        self.sim
            .mercury
            .wait(timeout, &what, |hub| {
                hub.acks().into_iter().find(|a| a.message_id == message_id)
            })
            .await
    }

    /// Waits until `check` holds for the frames the clients sent; returns them.
    pub async fn wait_received(
        &self,
        mut check: impl FnMut(&[ReceivedFrame]) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedFrame>> {
        self.sim
            .mercury
            .wait(timeout, "mercury client frames", |hub| {
                let frames = hub.received();
                check(&frames).then_some(frames)
            })
            .await
    }

    /// Datagrams received on the UDP sockets (as `GET /admin/udp`).
    pub fn udp_received(&self) -> Vec<UdpDatagram> {
        self.sim.udp.snapshot()
    }

    /// Stops every listener and task and waits for them, at most 5 s; stragglers are aborted.
    pub async fn shutdown(self) {
        let Self { trigger, tasks, .. } = self;
        if !trigger.wait_all(SHUTDOWN_BOUND).await {
            tracing::warn!("roomd-sim tasks did not stop within {SHUTDOWN_BOUND:?}; aborting them");
            for task in &tasks {
                task.abort();
            }
        }
        for task in tasks {
            // A cancelled or panicked task has nothing left to clean up here.
            let _ = task.await;
        }
        tracing::info!("roomd-sim stopped");
    }
}
