//! `GET /calendar/api/v1/calendarEvents` (the paged catch-up list) and
//! `GET /calendar/api/v1/calendarEvents/{base64url id}` (one event). Bearer-protected.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::dto::{decode_resource_id, render};
use super::time::parse_iso8601;
use super::{DEFAULT_PAGE, MAX_PAGE, PageFault};
use crate::state::AppState;

/// Path of the list, for the `Link` header.
const LIST_PATH: &str = "/calendar/api/v1/calendarEvents";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/calendarEvents", get(list))
        .route("/calendarEvents/{id}", get(one))
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}

/// The list's query: `max`, `offset`, `fromDate`, `toDate` (first occurrence of each wins).
#[derive(Debug, PartialEq, Eq)]
struct ListQuery {
    max: usize,
    offset: usize,
    from: Option<i64>,
    to: Option<i64>,
}

fn parse_query(raw: &str) -> Result<ListQuery, String> {
    let mut max = None;
    let mut offset = None;
    let mut from = None;
    let mut to = None;
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        let slot = match k.as_ref() {
            "max" => &mut max,
            "offset" => &mut offset,
            "fromDate" => &mut from,
            "toDate" => &mut to,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    let max = match max {
        None => DEFAULT_PAGE,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_PAGE),
            _ => {
                return Err(format!(
                    "invalid max {m:?}: an integer from 1 (at most {MAX_PAGE} are returned)"
                ));
            }
        },
    };
    let offset = match offset {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| format!("invalid offset {o:?}: an integer from 0"))?,
    };
    let date = |name: &str, v: Option<String>| -> Result<Option<i64>, String> {
        v.map(|s| {
            parse_iso8601(&s).ok_or_else(|| {
                format!("invalid {name} {s:?}: ISO-8601 like 2022-04-23T18:58:17.284Z")
            })
        })
        .transpose()
    };
    let from = date("fromDate", from)?;
    let to = date("toDate", to)?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err("fromDate is after toDate".to_owned());
        }
    }
    Ok(ListQuery {
        max,
        offset,
        from,
        to,
    })
}

/// The raw query with `max` and `offset` replaced (each first occurrence; later ones dropped) or
/// appended; every other parameter kept byte for byte.
fn next_query(raw: &str, max: usize, offset: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    let (mut saw_max, mut saw_offset) = (false, false);
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let name = form_urlencoded::parse(piece.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default();
        match name.as_str() {
            "max" if !saw_max => {
                saw_max = true;
                parts.push(format!("max={max}"));
            }
            "offset" if !saw_offset => {
                saw_offset = true;
                parts.push(format!("offset={offset}"));
            }
            "max" | "offset" => {}
            _ => parts.push(piece.to_owned()),
        }
    }
    if !saw_max {
        parts.push(format!("max={max}"));
    }
    if !saw_offset {
        parts.push(format!("offset={offset}"));
    }
    parts.join("&")
}

/// `scheme://authority` the client used: the URI's (HTTP/2) or the Host header (HTTP/1.1).
fn origin(uri: &Uri, headers: &HeaderMap, fallback: &str) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    match authority {
        Some(a) => format!("{scheme}://{a}"),
        None => fallback.to_owned(),
    }
}

fn fault_response(f: &PageFault) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = f.body.clone().unwrap_or_else(|| {
        json!({ "message": format!(
            "{} (fault injected by roomd-sim)",
            status.canonical_reason().unwrap_or("error")
        )})
    });
    let mut resp = (status, Json(body)).into_response();
    if let Some(secs) = f.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

async fn list(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let raw = uri.query().unwrap_or_default();
    let q = match parse_query(raw) {
        Ok(q) => q,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let page_no = (q.offset / q.max) as u64 + 1;
    if let Some(f) = app.sim.calendar.take_fault(page_no) {
        tracing::info!(
            page = page_no,
            status = f.status,
            "calendar list page fault injected"
        );
        return fault_response(&f);
    }
    let page = app.sim.calendar.page(q.from, q.to, q.offset, q.max);
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(b, key)| render(b, key.as_ref()))
        .collect();
    tracing::debug!(
        page = page_no,
        items = items.len(),
        more = page.more,
        "calendar list page"
    );
    let mut resp = Json(json!({ "items": items })).into_response();
    if page.more {
        let next = format!(
            "<{}{LIST_PATH}?{}>; rel=\"next\"",
            origin(&uri, &headers, &app.listener.base_url),
            next_query(raw, q.max, q.offset.saturating_add(q.max))
        );
        match HeaderValue::from_str(&next) {
            Ok(v) => {
                resp.headers_mut().insert(header::LINK, v);
            }
            Err(e) => tracing::warn!(error = %e, "calendar Link header not representable"),
        }
    }
    resp
}

async fn one(State(app): State<AppState>, Path(rid): Path<String>) -> Response {
    let found = decode_resource_id(&rid).and_then(|id| app.sim.calendar.get(&id));
    match found {
        Some((b, key)) => Json(render(&b, key.as_ref())).into_response(),
        None => message(StatusCode::NOT_FOUND, "calendar event not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_caps_and_errors() {
        assert_eq!(
            parse_query(""),
            Ok(ListQuery {
                max: 50,
                offset: 0,
                from: None,
                to: None
            })
        );
        let q = parse_query("max=500&offset=7&compact=true&max=3").expect("query");
        assert_eq!((q.max, q.offset), (200, 7));
        let q =
            parse_query("fromDate=2022-04-23T18%3A58%3A17.284Z&toDate=2022-04-25T18:58:17.284Z")
                .expect("dates");
        assert_eq!(q.from, Some(1_650_740_297_284));
        assert_eq!(q.to, Some(1_650_740_297_284 + 2 * 86_400_000));
        for bad in [
            "max=0",
            "max=-1",
            "max=x",
            "offset=-1",
            "offset=1.5",
            "fromDate=yesterday",
            "toDate=",
            "fromDate=2022-04-25T00:00:00Z&toDate=2022-04-24T00:00:00Z",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_query_keeps_the_rest() {
        assert_eq!(
            next_query(
                "max=10&offset=0&fromDate=2022-04-23T18:58:17.284Z&compact=true",
                10,
                10
            ),
            "max=10&offset=10&fromDate=2022-04-23T18:58:17.284Z&compact=true"
        );
        assert_eq!(
            next_query("compact=true&max=500", 200, 200),
            "compact=true&max=200&offset=200"
        );
        assert_eq!(next_query("", 50, 50), "max=50&offset=50");
        assert_eq!(next_query("offset=1&offset=2", 50, 51), "offset=51&max=50");
    }
}
