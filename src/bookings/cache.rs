//! The bookings cache in the state directory: one JSON document replaced atomically
//! (write, fsync, rename, fsync the directory), so a crash at any moment leaves the old or
//! the new state. Schema-versioned; a cache that does not load is moved aside, logged, and
//! rebuilt by the next catch-up.

use serde::{Deserialize, Serialize};

use super::model::BookingsModel;
use super::view::bookings_txt;
use crate::store::{StateDir, StoreError};

pub const CACHE_FILE: &str = "bookings.json";
pub const TEXT_FILE: &str = "bookings.txt";
pub const SCHEMA: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CacheFile {
    schema: u32,
    model: BookingsModel,
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// No cache yet (first start, or after a factory reset).
    Missing,
    Cache(BookingsModel),
    /// Unreadable (torn by something other than us, edited, another schema): moved aside.
    Corrupt {
        reason: String,
        moved_to: Option<std::path::PathBuf>,
    },
}

pub fn load(state: &StateDir) -> Loaded {
    let bytes = match state.read(CACHE_FILE) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Loaded::Missing,
        Err(e) => return corrupt(state, e.to_string()),
    };
    #[derive(Deserialize)]
    struct Version {
        schema: u32,
    }
    let reason = match serde_json::from_slice::<Version>(&bytes) {
        Ok(Version { schema: SCHEMA }) => match serde_json::from_slice::<CacheFile>(&bytes) {
            Ok(file) => return Loaded::Cache(file.model),
            Err(e) => format!("not a valid cache: {e}"),
        },
        Ok(Version { schema }) => format!("schema {schema}, this roomd reads {SCHEMA}"),
        Err(e) => format!("not a valid cache: {e}"),
    };
    corrupt(state, reason)
}

fn corrupt(state: &StateDir, reason: String) -> Loaded {
    let moved_to = match state.move_aside(CACHE_FILE) {
        Ok(path) => Some(path),
        Err(e) => {
            tracing::error!("cannot move the bookings cache aside: {e}");
            None
        }
    };
    tracing::error!(
        "bookings cache {} is unusable ({reason}); moved aside to {}; it is rebuilt from the next calendar catch-up",
        state.file(CACHE_FILE).display(),
        moved_to
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "nowhere".into())
    );
    Loaded::Corrupt { reason, moved_to }
}

/// Writes the cache, then `bookings.txt`; each replaced atomically.
pub fn save(
    state: &StateDir,
    model: &BookingsModel,
    start_buffer_secs: u64,
) -> Result<(), StoreError> {
    let file = CacheFile {
        schema: SCHEMA,
        model: model.clone(),
    };
    let json = serde_json::to_vec(&file).expect("the bookings model serialises");
    state.write_atomic(CACHE_FILE, &json)?;
    state.write_atomic(TEXT_FILE, bookings_txt(model, start_buffer_secs).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::calendar::MeetingDto;

    fn model() -> BookingsModel {
        let mut model = BookingsModel::default();
        model.upsert(
            &MeetingDto {
                id: "a".into(),
                start: Some("2022-04-26T13:15:00.000Z".into()),
                webex_uri: Some("x@webex.com".into()),
                ..Default::default()
            },
            &Default::default(),
        );
        model.mark_pending("minimal-1");
        model
    }

    #[test]
    fn round_trip_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        assert!(matches!(load(&state), Loaded::Missing));
        save(&state, &model(), 300).unwrap();
        let Loaded::Cache(loaded) = load(&state) else {
            panic!()
        };
        assert_eq!(loaded, model());
        let text = std::fs::read_to_string(state.file(TEXT_FILE)).unwrap();
        assert!(text.contains("*r BookingsListResult Booking 1 Id: \"webex-1\""));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.file(CACHE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_and_foreign_schema_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        state
            .write_atomic(CACHE_FILE, b"{\"schema\":1,\"model\":{\"book")
            .unwrap();
        let Loaded::Corrupt { moved_to, .. } = load(&state) else {
            panic!()
        };
        assert!(moved_to.unwrap().exists());
        assert!(matches!(load(&state), Loaded::Missing));
        state
            .write_atomic(CACHE_FILE, b"{\"schema\":9,\"model\":{}}")
            .unwrap();
        let Loaded::Corrupt { reason, .. } = load(&state) else {
            panic!()
        };
        assert_eq!(reason, "schema 9, this roomd reads 1");
    }
}
