//! Calendar and KMS over HTTPS (wire profile §4): one event by id, the paged list, and the
//! content keys encrypted fields name.

use crate::cloud::authed::{AuthedClient, CloudError};
use crate::net::http::{Method, percent_encode};
use crate::proto::ParseError;
use crate::proto::calendar::{self, MeetingDto};

#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum CalendarError {
    /// {0}
    Cloud(#[from] CloudError),
    /// {0}
    Protocol(#[from] ParseError),
    /// catch-up page {page} failed: {source}
    Page {
        page: usize,
        source: Box<CalendarError>,
    },
    /// the catch-up did not end after {0} pages
    TooManyPages(usize),
    /// KMS key {uri}: {reason}
    Key { uri: String, reason: String },
}

/// Where the calendar and KMS live (resolved from the U2C catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarUrls {
    /// `…/calendar/api/v1`
    pub calendar: String,
    /// `…/kms`
    pub kms: String,
}

/// At most this many pages per catch-up (10,000 bookings at 50 a page, with room to spare).
pub const MAX_PAGES: usize = 1000;

#[derive(Debug, Clone)]
pub struct CalendarClient {
    client: AuthedClient,
    urls: CalendarUrls,
}

impl CalendarClient {
    pub fn new(client: AuthedClient, urls: CalendarUrls) -> Self {
        Self { client, urls }
    }

    /// `GET calendarEvents/{base64url(id)}?compact=true`; `Ok(None)` when it no longer exists.
    pub async fn event(&self, id: &str) -> Result<Option<MeetingDto>, CalendarError> {
        let url = format!(
            "{}/calendarEvents/{}?compact=true",
            self.urls.calendar.trim_end_matches('/'),
            calendar::event_path_id(id)
        );
        match self.client.send(Method::GET, &url, None, &[]).await {
            Ok(response) => Ok(Some(calendar::parse_meeting(&response.body)?)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The list over [from, to), one page per [`Pager::next`] call.
    pub fn pages(&self, from_iso: &str, to_iso: &str) -> Pager<'_> {
        Pager {
            client: self,
            next_url: Some(format!(
                "{}/calendarEvents?max=50&offset=0&fromDate={from_iso}&toDate={to_iso}&compact=true",
                self.urls.calendar.trim_end_matches('/')
            )),
            page: 0,
        }
    }

    /// `GET {kms}/keys?uri=…` → the 256-bit content key.
    pub async fn key(&self, uri: &str) -> Result<[u8; 32], CalendarError> {
        let url = format!(
            "{}/keys?uri={}",
            self.urls.kms.trim_end_matches('/'),
            percent_encode(uri)
        );
        let fail = |reason: String| CalendarError::Key {
            uri: uri.to_string(),
            reason,
        };
        let response = self
            .client
            .send(Method::GET, &url, None, &[])
            .await
            .map_err(|e| fail(e.to_string()))?;
        #[derive(serde::Deserialize)]
        struct Jwk {
            kty: String,
            k: String,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            jwk: Jwk,
        }
        let answer: Answer = crate::proto::parse_json("KMS key", &response.body)?;
        if answer.jwk.kty != "oct" {
            return Err(fail(format!("key type {}, expected oct", answer.jwk.kty)));
        }
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(answer.jwk.k.trim_end_matches('='))
            .map_err(|e| fail(format!("key is not base64url: {e}")))?;
        bytes
            .try_into()
            .map_err(|v: Vec<u8>| fail(format!("key of {} bytes, expected 32", v.len())))
    }
}

/// Walks the list by its `Link: rel="next"` headers. Any failed page is an error: what came
/// before it must not be treated as complete.
#[derive(Debug)]
pub struct Pager<'a> {
    client: &'a CalendarClient,
    next_url: Option<String>,
    page: usize,
}

impl Pager<'_> {
    /// The next page's DTOs; `None` after the last page.
    pub async fn next(&mut self) -> Option<Result<Vec<MeetingDto>, CalendarError>> {
        let url = self.next_url.take()?;
        self.page += 1;
        let page = self.page;
        if page > MAX_PAGES {
            return Some(Err(CalendarError::TooManyPages(MAX_PAGES)));
        }
        let fetched = async {
            let response = self
                .client
                .client
                .send(Method::GET, &url, None, &[])
                .await?;
            let parsed = calendar::parse_page(&response.body)?;
            let next = response
                .headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(calendar::next_link);
            Ok::<_, CalendarError>((parsed, next))
        }
        .await;
        match fetched {
            Ok((parsed, next)) => {
                for reason in &parsed.rejected {
                    tracing::error!("calendar catch-up page {page}: item skipped: {reason}");
                }
                self.next_url = next;
                Some(Ok(parsed.items))
            }
            Err(e) => Some(Err(CalendarError::Page {
                page,
                source: Box::new(e),
            })),
        }
    }

    /// Pages fetched so far.
    pub fn pages_read(&self) -> usize {
        self.page
    }
}
