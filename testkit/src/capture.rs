//! The in-process log capture: every event and span of a test process's daemons and simulators,
//! at `trace`, kept for the tests' assertions and, in a scanned run, written for the secret scan
//! ([`crate::test_run`]).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::test_run;

/// One captured event: its level, message and fields, the `roomd_event` values of the spans it
/// was emitted in, and the thread it was emitted on.
#[derive(Debug, Clone)]
pub struct CapturedEvent {
    pub target: String,
    pub level: tracing::Level,
    pub text: String,
    pub subsystems: Vec<String>,
    pub thread: ThreadId,
}

#[derive(Clone, Default)]
pub struct LogCapture {
    pub events: Arc<Mutex<Vec<CapturedEvent>>>,
    /// Where every event and span also goes as a line, for the secret scan (`test_run`).
    pub sink: Option<test_run::LineSink>,
}

impl std::fmt::Debug for LogCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCapture")
            .field("events", &self.lock().len())
            .field("sink", &self.sink)
            .finish()
    }
}

struct SpanSubsystem(String);

#[derive(Default)]
struct TextVisitor {
    text: String,
    roomd_event: Option<String>,
}

impl Visit for TextVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "roomd_event" {
            self.roomd_event = Some(value.to_string());
        }
        self.text.push_str(&format!(" {}={}", field.name(), value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text
            .push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl<S> tracing_subscriber::Layer<S> for LogCapture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut visitor = TextVisitor::default();
        attrs.record(&mut visitor);
        if let Some(sink) = &self.sink {
            let meta = attrs.metadata();
            sink.line(&format!(
                "{} {} span {}:{}",
                meta.level(),
                meta.target(),
                meta.name(),
                visitor.text
            ));
        }
        if let (Some(span), Some(subsystem)) = (ctx.span(id), visitor.roomd_event) {
            span.extensions_mut().insert(SpanSubsystem(subsystem));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let (Some(sink), Some(span)) = (&self.sink, ctx.span(id)) {
            let mut visitor = TextVisitor::default();
            values.record(&mut visitor);
            sink.line(&format!(
                "{} {} span {} record:{}",
                span.metadata().level(),
                span.metadata().target(),
                span.name(),
                visitor.text
            ));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = TextVisitor::default();
        event.record(&mut visitor);
        let subsystems = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .filter_map(|span| {
                        span.extensions()
                            .get::<SpanSubsystem>()
                            .map(|s| s.0.clone())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(sink) = &self.sink {
            sink.line(&format!(
                "{} {} {:?}:{}",
                event.metadata().level(),
                event.metadata().target(),
                subsystems,
                visitor.text
            ));
        }
        self.lock().push(CapturedEvent {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            text: visitor.text,
            subsystems,
            thread: std::thread::current().id(),
        });
    }
}

/// Everything at `trace`, except tungstenite's frame dumps: at `trace` it prints every
/// WebSocket frame and handshake request whole, bearer tokens and xAPI credentials included
/// (mercury's authorization frame, the auth subprotocol), and would be most of the log.
/// roomd itself keeps dependencies at `warn` unless `RUST_LOG` says otherwise (docs/security.md).
const CAPTURE_FILTER: &str = "trace,tungstenite=debug,tokio_tungstenite=debug";

impl LogCapture {
    /// The process-wide capture, installed as the global subscriber on first use. (A
    /// per-thread default misses events when other tests of the binary race it in
    /// tracing's callsite cache, so every test of a binary shares this one.)
    ///
    /// Every test of the binary shares it, so [`events`](Self::events) and
    /// [`contains`](Self::contains) see the events of every test that ran so far: fine for "this
    /// line was logged", not for "nothing like this was logged". Those use
    /// [`events_of_this_test`](Self::events_of_this_test) and
    /// [`this_test_contains`](Self::this_test_contains).
    pub fn global() -> &'static LogCapture {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = LogCapture {
                sink: test_run::in_process_log(),
                ..LogCapture::default()
            };
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::EnvFilter::new(CAPTURE_FILTER))
                .with(capture.clone());
            // As roomd's own logging does, `log` records (rustls, tungstenite, reqwest) are
            // bridged in too, so the secret scan reads what a trace-level roomd would log.
            subscriber.try_init().expect("no other global subscriber");
            capture
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<CapturedEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every event captured so far, of every test of the process.
    pub fn events(&self) -> Vec<CapturedEvent> {
        self.lock().clone()
    }

    /// Whether any event of any test so far contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.lock().iter().any(|e| e.text.contains(needle))
    }

    /// The events emitted on the calling thread. libtest runs each test on a thread of its own,
    /// and a current-thread tokio test (`#[tokio::test]`, the default flavour) runs every task of
    /// its runtime there too, so these are the test's own events, none of another test running
    /// alongside in the same binary. Events of blocking-pool and other threads are left out.
    pub fn events_of_this_test(&self) -> Vec<CapturedEvent> {
        let thread = std::thread::current().id();
        self.lock()
            .iter()
            .filter(|e| e.thread == thread)
            .cloned()
            .collect()
    }

    /// Whether an event emitted on the calling thread (see
    /// [`events_of_this_test`](Self::events_of_this_test)) contains `needle`.
    pub fn this_test_contains(&self, needle: &str) -> bool {
        let thread = std::thread::current().id();
        self.lock()
            .iter()
            .any(|e| e.thread == thread && e.text.contains(needle))
    }
}
