//! roomd-sim: the server side of every cloud protocol roomd speaks, on loopback, over real
//! TLS/HTTP/WebSocket/UDP. Used in-process by tests (`start` on port 0) and as the `roomd-sim` binary.
//!
//! Written from the wire profile only, never from the agent's code, so the two cannot silently share
//! a mistake.
//!
//! Module map:
//! - `server`: [`SimOptions`], [`start`], [`SimHandle`]; binds the listeners (main, proxy, alt, admin,
//!   UDP) and wires the routers.
//! - `http`: serves a router over TLS (ALPN h2 + HTTP/1.1) or cleartext, with graceful shutdown.
//! - `alt`: the alt listener's run-time modes (serve, 503, refuse); the main and proxy listeners use
//!   the same switch.
//! - `restart`: a front-end restart (every HTTPS listener closed, connections and event sockets
//!   dropped, the same ports bound again after a down time; data kept).
//! - `tls`: the per-run test CA and proxy CA and the `localhost`/`127.0.0.1`/`::1` certificates they sign.
//! - `scenario`: [`Scenario`], the TOML/JSON description of the simulated cloud.
//! - `state`: the shared state every service and the admin API use.
//! - `gds`: `GET /gds/health`, the bootstrap health document.
//! - `activation`: SRP-6a activation (`/activation/idb/token/v1/actions/srp/*`); math in [`srp`].
//! - `identity`, `tokens`: token refresh and the store of every token issued.
//! - `auth`: the bearer check in front of the post-activation services.
//! - `u2c`, `wdm`: the service catalog (hostmap) and device registration.
//! - `mercury`: the event WebSocket `GET /mercury/registrations/{id}/messages` (authorization, events
//!   with sequence numbers, acks, ping/pong, shutdown and make-before-break), split into `frames`
//!   (exact bytes), `hub` (sockets and registrations) and `socket` (one task per socket).
//! - `udp`: UDP sockets (echo for now, STUN later).
//! - `recorder`: [`ReceivedRequest`], the bounded log of every HTTPS request.
//! - `faults`: [`Fault`], canned error answers for any HTTPS route.
//! - `calendar`: the calendar service (`/calendar/api/v1/calendarEvents`, paged with `Link` next, and
//!   one event by base64url id), the DTO with compact-JWE (`dir` + `A256GCM`) fields, the KMS
//!   (`/kms/keys?uri=`), scenario `[[bookings]]` and `[kms]`, list page faults, the mercury
//!   `calendar.meeting.*` events admin changes emit, and its `/admin/calendar/*`, `/admin/kms/*`
//!   routes and [`SimHandle`] mirrors.
//! - `locus`: Locus call control (`/locus/api/v1/loci/…`: call, meetingInfo, join/accept, decline,
//!   alert, leave, hold, DTMF, sync), the locus model with u64 sequences, `locus.*` mercury events
//!   with the admin's delta fault modes, join answers whose remote SDP names the media node, its
//!   `/admin/locus*` routes and [`SimHandle`] mirrors; scenario `[locus]`.
//! - `media`: the media node (wire profile §7): one UDP socket answering STUN, demultiplexing RTP and
//!   RTCP per device session, decoding received H.264 with GStreamer (real sizes and frame rate),
//!   the multistream SCA/SCR exchange both ways (the node's three-layer SCR, resends, acks), the
//!   streams a device SCR asks for (encoded with GStreamer, CSI in the RTP header extension), its
//!   `/admin/media*` routes, [`SimHandle::media`] and `wait_media`; scenario `[media]`.
//! - `calliope`: media reachability: `/calliope/api/discovery/v1/clusters`, one udp, tcp and xtls
//!   STUN node per generated cluster with injected RTTs (scenario `[calliope]`), misbehaving
//!   clusters, `/admin/calliope*` and [`SimHandle`] mirrors.
//! - `admin`: the loopback JSON admin API that steers all of the above.
//! - `meeting_server`: the simulated Cisco Meeting Server events listener (own CA, optional mutual
//!   TLS, `/api/v1/authTokens`, the `/events/v1` WebSocket, a conference model, a scripted
//!   conference) and its `/admin/meeting-server/*` routes and [`SimHandle`] mirrors.
//! - `clock`, `shutdown`: time formatting and the shutdown signal.
//! - `test_run`: with `ROOMD_TEST_LOG_DIR` set, records every secret issued or configured and
//!   keeps the log where the test run's secret scan reads it.

mod activation;
mod admin;
mod alt;
mod auth;
mod calendar;
mod calliope;
mod clock;
mod faults;
mod gds;
mod http;
mod identity;
mod locus;
mod media;
mod meeting_server;
mod mercury;
mod recorder;
pub mod restart;
mod scenario;
mod server;
mod shutdown;
pub mod srp;
mod state;
pub mod test_run;
pub mod tls;
mod tokens;
mod u2c;
mod udp;
mod wdm;

pub use activation::{ActivationRecord, MAX_FAILURES};
pub use calendar::{
    BookingChange, BookingPatch, BookingSpec, BookingTruth, BulkOutcome, BulkSpec,
    CALENDAR_SERVICE_LINK, CalendarError, DEFAULT_KEY, DEFAULT_ORGANIZER_EMAIL,
    DEFAULT_ORGANIZER_NAME, DEFAULT_PAGE, EventMode, KmsKey, KmsScenario, MAX_BULK,
    MAX_DURATION_MINS, MAX_PAGE, MAX_START_IN_MINS, PageFault, key_url, resource_id,
};
pub use calliope::{BEST_MARGIN_MS, CalliopeScenario, MAX_CLUSTERS, TRANSPORTS, Transport};
pub use faults::Fault;
pub use locus::{LocusScenario, MAX_ANSWER_DELAY_MS, MAX_DTMF_TONES, MAX_SEQUENCE_ENTRIES};
pub use media::{MAX_SCR_CHANGE_SECS, MAX_SEND_FPS, MAX_SEND_FS, MediaScenario};
pub use meeting_server::{
    CMS_CA_COMMON_NAME, CmsCall, CmsCallFields, CmsClose, CmsConfigPatch, CmsConnection,
    CmsDirection, CmsError, CmsFrame, CmsParticipant, CmsParticipantFields, CmsResource, CmsScript,
    CmsScriptOptions, CmsSnapshot, CmsSubscription, CmsSubscriptionState, CmsViolation,
    MeetingServerScenario,
};
pub use mercury::{
    AckRecord, ClosedBy, ConnectionInfo, ConnectionState, DeliveredEvent, PongMode, PushOutcome,
    ReceivedFrame, SentFrame,
};
pub use recorder::ReceivedRequest;
pub use scenario::{
    Cluster, DEFAULT_ORG_ID, Device, DeviceFault, FeatureToggle, GdsScenario,
    MAX_AUTH_TIMEOUT_SECS, MercuryScenario, Scenario, TokensScenario, WdmFeatures, WdmScenario,
};
pub use server::{SimHandle, SimInfo, SimOptions, start};
pub use udp::UdpDatagram;
